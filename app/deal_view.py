"""What a deal's page shows and offers one person: the deal from the log, the current stage's
exit criteria as form fields, and the actions open to them from here.

Which actions are open is decided by the deal's own rules, asked in advance: each candidate
command is put to the pure decision it would meet in the workflow (`domain.decide`) and to the
access check, against the logged state. Nothing here restates a rule, so a page never offers a
move the deal would refuse (it may still refuse one, if the deal moved on meanwhile).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel

from app import deal_reads
from app.context import Context
from app.deal_reads import DealStatus
from definitions.fact_types import Control
from definitions.model import ProcessDefinition
from domain import decide, proposal_files
from domain.access import Claim, Forbidden, check
from domain.commands import LoseDeal, MoveStage, WinDeal
from domain.decide import Refusal
from domain.events import DealEvent, ProposalGenerated, TouchFailed, TouchScheduled, TouchSent
from domain.state import DealState
from store.deals import LinkedDeal


class FactField(BaseModel):
    fact: str
    type: str
    question: str
    options: list[str]
    value: Any = None  # what the deal already holds for it, if anything
    control: Control  # the type's widget (definitions.fact_types), showing `value`


class MoveOption(BaseModel):
    to: str
    title: str
    kind: Literal["skip", "back"]
    reason_required: bool


class TouchLine(BaseModel):
    cadence_run: str
    touch_no: int
    channel: str
    due_at: datetime | None = None
    sent: bool = False
    error: str | None = None


class ProposalLink(BaseModel):
    template: str
    seq: int
    at: datetime


class DealView(BaseModel):
    status: DealStatus
    stage_title: str | None
    phase: str | None
    criteria: list[FactField]
    may_act: bool
    why_not: str | None  # why the viewer may not act on this deal, in words
    can_complete: bool
    moves: list[MoveOption]
    can_win: bool
    rebuy_kinds: list[str]
    can_lose: bool
    lost_reasons: list[str]
    can_reply: bool
    events: list[DealEvent]
    touches: list[TouchLine]
    proposals: list[ProposalLink]
    chain: list[LinkedDeal]


def _opens(attempt: Any) -> bool:
    """Whether a dry run of a decision goes through, or fails only for what the form will ask."""
    try:
        attempt()
    except Refusal as refusal:
        return refusal.code in {"reason_required", "missing_facts"}
    return True


def _moves(state: DealState, d: ProcessDefinition, actor: str) -> list[MoveOption]:
    out = []
    at = datetime.now(UTC)
    for stage in d.stages:
        cmd = MoveStage(request_id="preview", actor=actor, to=stage.id)
        if not _opens(lambda cmd=cmd: decide.move(state, d, cmd, at)):
            continue
        try:
            decide.move(state, d, cmd, at)
            needs_reason = False
        except Refusal:
            needs_reason = True
        kind: Literal["skip", "back"] = "skip" if d.index(stage.id) > d.index(state.stage or stage.id) else "back"
        out.append(MoveOption(to=stage.id, title=stage.title, kind=kind, reason_required=needs_reason))
    return out


def _touches(events: list[DealEvent]) -> list[TouchLine]:
    lines: dict[tuple[str, int], TouchLine] = {}
    for e in events:
        if isinstance(e, TouchScheduled | TouchSent | TouchFailed):
            line = lines.setdefault(
                (e.cadence_run, e.touch_no),
                TouchLine(cadence_run=e.cadence_run, touch_no=e.touch_no, channel=e.channel),
            )
            if isinstance(e, TouchScheduled):
                line.due_at = e.due_at
            elif isinstance(e, TouchSent):
                line.sent = True
            else:
                line.error = e.error
    return list(lines.values())


async def view(c: Context, deal_id: str, *, actor: str, claim: Claim | None, min_seq: int = 0) -> DealView:
    status = await deal_reads.status(c, deal_id, min_seq=min_seq)
    state = status.state
    pinned = await c.definition(state.process, state.version)
    d = pinned.definition
    events = [proposal_files.readable(e) for e in await deal_reads.events(c, deal_id)]
    chain = await deal_reads.chain(c, deal_id) if state.last_seq else []
    why_not = None
    try:
        check(claim, actor, "act", state)
    except Forbidden as denied:
        why_not = denied.message
    stage = d.stage(state.stage) if state.stage and d.has_stage(state.stage) else None
    known = state.facts.get(state.stage or "", {})
    criteria = [
        FactField(
            fact=f.fact,
            type=f.type,
            question=f.question,
            options=list(f.options),
            value=known.get(f.fact),
            control=f.kind.control(f, known.get(f.fact)),
        )
        for f in (stage.exit_criteria if stage else [])
    ]
    open_ = status.running and stage is not None and state.status in ("open", "won")
    now = datetime.now(UTC)
    reasons = list(d.outcomes.lost.reasons) if d.outcomes.lost else []
    can_win = open_ and _opens(lambda: decide.win(state, d, WinDeal(request_id="preview", actor=actor), now))
    can_lose = (
        open_
        and bool(reasons)
        and _opens(lambda: decide.lose(state, d, LoseDeal(request_id="preview", actor=actor, reason=reasons[0]), now))
    )
    return DealView(
        status=status,
        stage_title=stage.title if stage else None,
        phase=stage.phase if stage else None,
        criteria=criteria,
        may_act=why_not is None,
        why_not=why_not,
        can_complete=open_,
        moves=_moves(state, d, actor) if open_ else [],
        can_win=can_win,
        rebuy_kinds=[r.kind.value for r in d.rebuy],
        can_lose=can_lose,
        lost_reasons=reasons,
        can_reply=status.running and state.cadence is not None,
        events=events,
        touches=_touches(events),
        proposals=[
            ProposalLink(template=e.template, seq=e.seq, at=e.at) for e in events if isinstance(e, ProposalGenerated)
        ],
        chain=chain,
    )
