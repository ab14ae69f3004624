"""Phase strength per rep, which value of a fact wins, follow-up persistence: what the sales texts
ask of the numbers. The CLI, the report and the HTTP API all ask here, so a fact that cannot be
compared is refused with the same words everywhere."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel

from app.context import Context
from app.errors import Refused
from definitions.fact_types import Analysis, compared
from definitions.loader import PinnedDefinition
from definitions.model import FactSpec
from store import fact_outcomes, follow_up_persistence, rep_strength
from store.fact_outcomes import FactOutcomes
from store.follow_up_persistence import Persistence
from store.insights import Scope
from store.rep_strength import RepStrength

MAX_BUCKETS = 20


class InsightQuery(BaseModel):
    """Which deals: those of one process, optionally of one version and a start window, as of an
    instant (see `store.insights.Scope`)."""

    process: str
    version: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    as_of: datetime | None = None

    def problem(self) -> str | None:
        if self.since and self.until and self.since >= self.until:
            return f"since {self.since.isoformat()} is not before until {self.until.isoformat()}"
        return None


async def _pinned(c: Context, query: InsightQuery) -> tuple[PinnedDefinition, Scope]:
    problem = query.problem()
    if problem:
        raise Refused(problem, code="invalid_request")
    pinned = await c.definition(query.process, query.version)
    return pinned, Scope(**query.model_dump())


async def reps(c: Context, query: InsightQuery) -> RepStrength:
    pinned, scope = await _pinned(c, query)
    return await rep_strength.compute(c.pool, pinned.definition, scope)


def fact_ref(text: str) -> tuple[str, str]:
    """`STAGE.FACT` as (stage, fact); ValueError naming the expected form."""
    stage, dot, fact = text.partition(".")
    if not dot or not stage or not fact or "." in fact:
        raise ValueError(f"{text!r}: expected STAGE.FACT, e.g. closing.close_technique")
    return stage, fact


def comparable_fact(pinned: PinnedDefinition, stage: str, fact: str) -> FactSpec:
    """The fact's spec, or a refusal that names what exists or why its values cannot be compared."""
    d = pinned.definition
    if not d.has_stage(stage):
        stages = ", ".join(s.id for s in d.stages)
        raise Refused(f"process {d.name!r} has no stage {stage!r}; its stages: {stages}", code="unknown_stage")
    spec = next((f for f in d.stage(stage).exit_criteria if f.fact == fact), None)
    if spec is None:
        facts = ", ".join(f"{f.fact} ({f.type})" for f in d.stage(stage).exit_criteria)
        known = f"its facts: {facts}" if facts else "it records no facts"
        raise Refused(f"stage {stage!r} of {d.name!r} has no fact {fact!r}; {known}", code="unknown_fact")
    if spec.kind.analysis is Analysis.none:
        raise Refused(
            f"{stage}.{fact} is a {spec.type} fact: only {_listed(compared(Analysis.categorical))} facts, and "
            f"{_listed(compared(Analysis.numeric))} facts in buckets, can be compared by value",
            code="invalid_request",
        )
    if d.stage(stage).post_sale:
        raise Refused(
            f"{stage} comes after the sale: every deal that records {fact} is already won, so its values "
            "cannot be compared by outcome",
            code="invalid_request",
        )
    return spec


def _listed(names: list[str]) -> str:
    return ", ".join(names[:-1]) + f" and {names[-1]}" if len(names) > 1 else "".join(names)


async def by_fact(c: Context, query: InsightQuery, ref: str, *, buckets: int = 4) -> FactOutcomes:
    try:
        stage, fact = fact_ref(ref)
    except ValueError as exc:
        raise Refused(str(exc), code="invalid_request") from None
    if not 2 <= buckets <= MAX_BUCKETS:
        raise Refused(f"buckets {buckets}: between 2 and {MAX_BUCKETS}", code="invalid_request")
    pinned, scope = await _pinned(c, query)
    spec = comparable_fact(pinned, stage, fact)
    return await fact_outcomes.compute(c.pool, pinned.definition, stage, spec, scope, buckets=buckets)


def comparable_facts(pinned: PinnedDefinition) -> list[tuple[str, FactSpec]]:
    """Every (stage, fact) whose values can be compared: the report shows each."""
    out = []
    for stage in pinned.definition.stages:
        for spec in stage.exit_criteria:
            if not stage.post_sale and spec.kind.analysis is not Analysis.none:
                out.append((stage.id, spec))
    return out


async def follow_up(c: Context, query: InsightQuery, *, by_rep: bool = False) -> Persistence:
    pinned, scope = await _pinned(c, query)
    return await follow_up_persistence.compute(c.pool, pinned.definition, scope, by_rep=by_rep)
