"""What an import would do: the deals an export holds, in the process's terms, checked.

A deal with any problem is left out whole (never half-imported), and each problem names its
file and line. An open deal is planned to start at the stage it has reached; a closed one (won or
lost) to be recorded as history only.
"""

from __future__ import annotations

import hashlib
import itertools
import re
from collections import Counter, defaultdict
from collections.abc import Callable
from datetime import datetime

from pydantic import BaseModel

from crm.mapping import Mapping
from crm.model import CrmDeal, Parsed, Problem
from definitions.loader import PinnedDefinition
from definitions.model import ProcessDefinition
from domain.decide import coerce_fact, refused_move
from domain.events import DealEvent, FactValue
from domain.imports import ImportedHistory, ImportedOutcome, ImportedVisit, history_events

_ID = re.compile(r"[^A-Za-z0-9._:-]")


class PlannedDeal(BaseModel):
    deal_id: str
    crm_id: str
    owner: str
    value: float | None
    fields: dict[str, str]
    history: ImportedHistory
    outcome: ImportedOutcome | None  # None: open, to start at its last stage

    @property
    def stage(self) -> str:
        return self.history.visits[-1].stage

    def retold(self, pinned: PinnedDefinition) -> list[DealEvent]:
        """The events its imported history retells on `pinned` (its outcome's left out)."""
        return history_events(
            pinned.definition,
            self.history,
            deal_id=self.deal_id,
            version=pinned.version,
            content_hash=pinned.content_hash,
            owner=self.owner,
            value=self.value,
            fields=self.fields,
        )


class ImportPlan(BaseModel):
    source: str
    process: str
    version: str
    deals: list[PlannedDeal]
    problems: list[Problem]  # rows that cannot be taken; the others can
    blocking: list[Problem]  # the mapping itself is wrong: nothing is taken until it is fixed
    rows: int

    @property
    def open(self) -> list[PlannedDeal]:
        return [d for d in self.deals if d.outcome is None]

    @property
    def closed(self) -> list[PlannedDeal]:
        return [d for d in self.deals if d.outcome is not None]

    def starts_per_stage(self) -> dict[str, int]:
        counts = Counter(d.stage for d in self.open)
        return dict(sorted(counts.items()))

    def outcomes(self) -> dict[str, int]:
        return dict(Counter(d.outcome.status for d in self.closed if d.outcome is not None))


def deal_id_for(source: str, crm_id: str) -> str:
    """dealflow's id of a CRM deal: stable across runs (so a second import finds it), and within
    the characters a deal id may have; an id that had to change keeps a hash of the original."""
    clean = _ID.sub("-", crm_id).strip("-.:")
    if clean != crm_id or not clean:
        clean = f"{clean[:60]}-{hashlib.sha256(crm_id.encode()).hexdigest()[:8]}".lstrip("-")
    return f"{source}-{clean}"[:200]


def plan(parsed: Parsed, mapping: Mapping, pinned: PinnedDefinition, *, source: str, mapping_name: str) -> ImportPlan:
    d = pinned.definition
    problems = list(parsed.problems)
    blocking = [Problem(where=mapping_name, message=m) for m in mapping.check(d)]
    unmapped: dict[str, set[str]] = defaultdict(set)
    for deal in parsed.deals:
        for stage in {h.stage for h in deal.history} | ({deal.current_stage} if deal.current_stage else set()):
            if mapping.stage(stage) is None:
                unmapped[stage].add(deal.crm_id)
    for stage, ids in sorted(unmapped.items()):
        blocking.append(
            Problem(
                where=mapping_name,
                message=f"CRM stage {stage!r} is not mapped (used by {len(ids)} deal{'s' if len(ids) != 1 else ''}): "
                f"map it to a stage of {d.name}, to won, lost, or to skip",
            )
        )
    deals = []
    for deal in parsed.deals:
        if any(h.stage in unmapped for h in deal.history) or (deal.current_stage in unmapped):
            continue
        planned = _plan_one(deal, mapping, pinned, source, problems)
        if planned is not None:
            deals.append(planned)
    return ImportPlan(
        source=source,
        process=d.name,
        version=pinned.version,
        deals=deals,
        problems=problems,
        blocking=blocking,
        rows=parsed.rows,
    )


def _plan_one(
    deal: CrmDeal, mapping: Mapping, pinned: PinnedDefinition, source: str, problems: list[Problem]
) -> PlannedDeal | None:
    d = pinned.definition
    where = str(deal.origin)
    before = len(problems)

    def problem(message: str) -> None:
        problems.append(Problem(where=where, message=f"deal {deal.crm_id}: {message}"))

    visits: list[tuple[str, datetime]] = []
    ended: tuple[str, datetime] | None = None
    for change in deal.history:
        ours = mapping.stage(change.stage)
        if ours == "skip" or ours is None:
            continue
        if ours in ("won", "lost"):
            ended = (ours, change.entered_at)
            continue
        if not visits or visits[-1][0] != ours:
            visits.append((ours, change.entered_at))
    current = mapping.stage(deal.current_stage) if deal.current_stage else None
    status = deal.status
    if status is None:
        status = current if current in ("won", "lost") else "open"  # type: ignore[assignment]
    if status == "open":
        if current in ("won", "lost"):
            problem(f"open, yet its stage {deal.current_stage!r} is mapped to {current}")
        elif current == "skip":
            problem(f"its current stage {deal.current_stage!r} is mapped to skip: an open deal needs a stage to run at")
        elif current is not None and (not visits or visits[-1][0] != current):
            visits.append((current, visits[-1][1] if visits else deal.created_at))
    if not visits:
        visits.append((d.stages[0].id, deal.created_at))  # closed before any stage the process has
    if status == "open" and d.stage(visits[-1][0]).post_sale:
        problem(f"open at post-sale stage {visits[-1][0]!r}: map the CRM's won stage to won instead")
    owner = mapping.owner(deal.owner)
    if not owner:
        problem("no owner: the export names none and the mapping has no owners: '*' default")
    outcome = None
    if status in ("won", "lost"):
        closed_at = deal.closed_at or (ended[1] if ended else None)
        reason = None
        if closed_at is None:
            problem(f"{status}, with no date it closed")
        if status == "lost":
            if d.outcomes.lost is None:
                problem(f"lost, and {d.name} has no lost outcome")
            else:
                reason = mapping.lost_reason(deal.lost_reason)
                if reason is None:
                    problem(
                        f"lost reason {deal.lost_reason!r} is not mapped: add it under lost_reasons "
                        f"(or a '*' default) as one of {', '.join(d.outcomes.lost.reasons)}"
                    )
        _check_outcome(d, status, visits, deal, problem)
        if closed_at is not None:
            outcome = ImportedOutcome(status=status, at=max(closed_at, visits[-1][1]), reason=reason)
    _check_moves(d, visits, problem)
    facts = _facts(deal, mapping, pinned, problem)
    if len(problems) > before:
        return None
    history = ImportedHistory(
        source=source,
        crm_id=deal.crm_id,
        file=deal.origin.file,
        sha256=deal.origin.sha256,
        row=deal.origin.line,
        created_at=min(deal.created_at, visits[0][1]),
        visits=[ImportedVisit(stage=s, entered_at=at, facts=facts.get(s, {})) for s, at in visits],
    )
    fields = {"crm_id": deal.crm_id} | ({"name": deal.name} if deal.name else {})
    return PlannedDeal(
        deal_id=deal_id_for(source, deal.crm_id),
        crm_id=deal.crm_id,
        owner=owner or "",
        value=deal.value,
        fields=fields,
        history=history,
        outcome=outcome,
    )


def _check_outcome(
    d: ProcessDefinition, status: str, visits: list[tuple[str, datetime]], deal: CrmDeal, problem: Callable[[str], None]
) -> None:
    """A closed deal ends from its last stage, as the process's own rules let a deal end there:
    a history cut short, or one that jumps to Closed Won, would otherwise win from anywhere."""
    last = visits[-1][0]
    allowed = d.won_from() if status == "won" else d.lost_from()
    if status == "won" and d.stage(last).post_sale:
        return  # won already, and went on to the stages after the sale
    if last not in allowed:
        crm = f" (CRM stage {deal.current_stage!r})" if deal.current_stage else ""
        problem(
            f"{status} from stage {last!r}{crm}, and {d.name} lets a deal be {status} only from "
            f"{', '.join(repr(s) for s in allowed) or 'no stage'}: the history is cut short, or skips to the outcome"
        )


def _check_moves(d: ProcessDefinition, visits: list[tuple[str, datetime]], problem: Callable[[str], None]) -> None:
    """Moves the process refuses: the ones a rep could not make (a skip out of a stage that allows
    no skipping, a move back where none is allowed) and any move from after the sale back to
    before it. A move the process allows is retold as that move, with the import as its reason."""
    for (before, _), (after, at) in itertools.pairwise(visits):
        here, there = d.stage(before), d.stage(after)
        if here.post_sale and not there.post_sale:
            problem(
                f"moves from post-sale stage {before!r} back to {after!r} at {at.isoformat()}, which {d.name} refuses"
            )
        elif here.post_sale == there.post_sale and (refused := refused_move(d, before, after)) is not None:
            problem(
                f"moves from {before!r} to {after!r} at {at.isoformat()}, which {d.name} refuses ({refused}): "
                f"allow the move in the definition's `moves:` of {before!r}, or import into a process that does"
            )


def _facts(
    deal: CrmDeal,
    mapping: Mapping,
    pinned: PinnedDefinition,
    problem: Callable[[str], None],
) -> dict[str, dict[str, FactValue]]:
    """The export's facts (`STAGE.FACT` columns) in their declared types, by our stage id."""
    d = pinned.definition
    out: dict[str, dict[str, FactValue]] = {}
    found = [(mapping.stage(k.partition(".")[0]), k.partition(".")[2], raw) for k, raw in deal.facts.items()]
    found += [(k.partition(".")[0], k.partition(".")[2], raw) for k, raw in deal.stage_facts.items()]
    for stage, name, raw in found:
        if stage is None or not d.has_stage(stage):
            continue
        specs = {f.fact: f for f in d.stage(stage).exit_criteria}
        if name not in specs:
            continue  # a column the process does not ask for: kept out, not an error
        try:
            out.setdefault(stage, {})[name] = coerce_fact(specs[name], raw)
        except ValueError as exc:
            problem(f"fact {stage}.{name}: {exc}, got {raw!r}")
    return out
