"""Pure decisions: given the state, the definition and a command, the events it produces.

Each function either returns the events to record or raises `Refusal` with a code and a message a
rep can act on. The workflow calls the same function in the update validator (to reject before
anything enters history) and in the handler (to record), so the two can never disagree.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from definitions.model import FactSpec, Notify, ProcessDefinition
from domain import calendar
from domain.commands import (
    CompleteStage,
    LoseDeal,
    MigrateDeal,
    MissingFact,
    MoveStage,
    RecordResponse,
    StartDeal,
    WinDeal,
)
from domain.events import (
    BuyerResponded,
    DealClosed,
    DealEvent,
    DealLost,
    DealStarted,
    DealWon,
    EntryVia,
    Escalated,
    FactValue,
    FollowOnScheduled,
    MigratedToVersion,
    MovedBack,
    ReminderSent,
    SlaBreached,
    StageCompleted,
    StageEntered,
    StageSkipped,
)
from domain.reminders import Rung, manager_of
from domain.state import DealState


class Refusal(Exception):
    """A request the deal will not accept. `code` is stable; `message` is for people, in words every
    face shares (the CLI, the pages, the API), so it names no flag or field: when one input of the
    request is at fault, `details["input"]` names it (`reason`, `stage_map`) and each face adds how
    its own user supplies it."""

    def __init__(self, code: str, message: str, details: dict[str, Any] | None = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details or {}


class _Recorder:
    """Numbers events from the state's last sequence number, all at one instant."""

    def __init__(self, state: DealState, at: datetime, actor: str, request_id: str | None):
        self.seq = state.last_seq
        self.at = at
        self.actor = actor
        self.request_id = request_id
        self.events: list[DealEvent] = []

    def __call__(self, cls: type[Any], **fields: Any) -> None:
        self.seq += 1
        self.events.append(cls(seq=self.seq, at=self.at, actor=self.actor, request_id=self.request_id, **fields))

    def enter(self, stage: str, via: EntryVia) -> None:
        self(StageEntered, stage=stage, via=via)


def start(cmd: StartDeal, d: ProcessDefinition, version: str, content_hash: str, at: datetime) -> list[DealEvent]:
    rec = _Recorder(DealState(), at, cmd.actor, None)
    rec(
        DealStarted,
        deal_id=cmd.deal_id,
        process=d.name,
        version=version,
        content_hash=content_hash,
        owner=cmd.owner,
        value=cmd.value,
        fields=dict(cmd.fields),
        experiment=cmd.experiment,
        follows=cmd.follows,
        follow_kind=cmd.follow_kind,
        team=cmd.team,
    )
    rec.enter(d.stages[0].id, "start")
    return rec.events


# --- fact checking -------------------------------------------------------------------------


def coerce_fact(spec: FactSpec, value: FactValue) -> FactValue:
    """One fact in its declared type (its `definitions.fact_types` entry reads it), as an exit
    criterion takes it; ValueError naming the expectation otherwise (an import checks the facts an
    export brings by the same rule). A type with no entry raises UnknownFactType, never a refusal."""
    return spec.kind.coerce(spec, value)


def typed_facts(d: ProcessDefinition, stage: str, supplied: dict[str, FactValue]) -> dict[str, FactValue]:
    """The supplied facts of a stage coerced to their types, or a refusal naming every unknown or
    invalid one (whether the stage has all it needs is `check_facts`'s question)."""
    specs = {f.fact: f for f in d.stage(stage).exit_criteria}
    unknown = sorted(set(supplied) - set(specs))
    if unknown:
        raise Refusal(
            "unknown_fact",
            f"stage {stage!r} has no exit criterion named {', '.join(map(repr, unknown))}; "
            f"its facts are: {', '.join(specs) or 'none'}",
            {"unknown": unknown, "known": list(specs)},
        )
    coerced: dict[str, FactValue] = {}
    invalid: dict[str, str] = {}
    for name, value in supplied.items():
        kind = specs[name].kind  # outside the try: a type with no entry is no rep's mistake
        try:
            coerced[name] = kind.coerce(specs[name], value)
        except ValueError as exc:
            invalid[name] = f"{exc}, got {value!r}"
    if invalid:
        raise Refusal(
            "invalid_fact",
            "invalid facts: " + "; ".join(f"{k}: {v}" for k, v in invalid.items()),
            {"invalid": invalid},
        )
    return coerced


def check_facts(
    d: ProcessDefinition, state: DealState, stage: str, supplied: dict[str, FactValue]
) -> dict[str, FactValue]:
    """The supplied facts coerced to their types, or a refusal naming every problem."""
    coerced = typed_facts(d, stage, supplied)
    known = state.facts.get(stage, {})
    missing = [f for f in d.stage(stage).exit_criteria if f.fact not in coerced and f.fact not in known]
    if missing:
        raise Refusal(
            "missing_facts",
            f"cannot complete stage {stage!r}: missing "
            + ", ".join(f"{f.fact} ({f.question or f.type})" for f in missing),
            {"missing": [MissingFact.of(f).model_dump() for f in missing]},
        )
    return coerced


def missing_facts(d: ProcessDefinition, state: DealState) -> list[MissingFact]:
    if state.stage is None:
        return []
    known = state.facts.get(state.stage, {})
    return [MissingFact.of(f) for f in d.stage(state.stage).exit_criteria if f.fact not in known]


# --- commands ------------------------------------------------------------------------------


def _open(state: DealState, expected_stage: str | None) -> str:
    """The current stage, refusing when the deal has ended or the caller's view is stale."""
    if state.is_finished or state.stage is None:
        raise Refusal("deal_closed", f"deal {state.deal_id!r} is {state.status}; it takes no more actions")
    if expected_stage is not None and expected_stage != state.stage:
        raise Refusal(
            "stale_stage",
            f"deal {state.deal_id!r} is at stage {state.stage!r}, not {expected_stage!r}; refresh and retry",
            {"current": state.stage, "expected": expected_stage},
        )
    return state.stage


def _win_or_advance(rec: _Recorder, d: ProcessDefinition, stage: str, intents: list[str]) -> None:
    """After `stage` is completed: enter the next stage, win, or close the deal."""
    nxt = d.next_stage(stage)
    if d.stage(stage).post_sale:
        if nxt is None:
            rec(DealClosed, stage=None)
        else:
            rec.enter(nxt, "next")
        return
    if nxt is not None:
        rec.enter(nxt, "next")
        return
    rec(DealWon, stage=stage)
    _schedule_follow_ons(rec, d, intents)
    if d.post_sale:
        rec.enter(d.post_sale[0].id, "won")


def complete(state: DealState, d: ProcessDefinition, cmd: CompleteStage, at: datetime) -> list[DealEvent]:
    current = _open(state, cmd.expected_stage)
    if cmd.stage != current:
        if not d.has_stage(cmd.stage):
            raise Refusal("unknown_stage", f"process {d.name!r} has no stage {cmd.stage!r}")
        raise Refusal(
            "stale_stage",
            f"deal {state.deal_id!r} is at stage {current!r}, not {cmd.stage!r}",
            {"current": current, "expected": cmd.stage},
        )
    stage = d.stage(current)
    if not stage.post_sale and d.next_stage(current) is None and current not in d.won_from():
        raise Refusal("win_not_allowed", f"completing {current!r} would win the deal, which the process does not allow")
    facts = check_facts(d, state, current, cmd.facts)
    rec = _Recorder(state, at, cmd.actor, cmd.request_id)
    rec(StageCompleted, stage=current, facts=facts)
    if state.status == "won":  # a post-sale stage: the intent recorded now starts its clock now
        _schedule_follow_ons(rec, d, _intents(DealState(), facts), state)
        _win_or_advance(rec, d, current, [])
    else:
        _win_or_advance(rec, d, current, _intents(state, facts))
    return rec.events


def _reason(rule_reason_required: bool, reason: str | None, what: str) -> str | None:
    text = (reason or "").strip() or None
    if rule_reason_required and text is None:
        raise Refusal("reason_required", f"{what} needs a reason", {"input": "reason"})
    return text


def refused_move(d: ProcessDefinition, current: str, to: str) -> str | None:
    """Why the process refuses a deal going from `current` straight to `to` other than by completing
    the stage, or None: the one rule a rep's move and an imported CRM history both obey."""
    here, there = d.stage(current), d.stage(to)
    if here.post_sale != there.post_sale:
        return f"cannot move between pre-sale {current!r} and post-sale stages ({to!r})"
    i, j = d.index(current), d.index(to)
    if j > i + 1 and not here.moves.skip.allowed:
        return f"stage {current!r} does not allow skipping ahead to {to!r}"
    if j < i and not here.moves.back.allowed:
        return f"stage {current!r} does not allow moving back to {to!r}"
    return None


def move(state: DealState, d: ProcessDefinition, cmd: MoveStage, at: datetime) -> list[DealEvent]:
    current = _open(state, cmd.expected_stage)
    if not d.has_stage(cmd.to):
        raise Refusal("unknown_stage", f"process {d.name!r} has no stage {cmd.to!r}")
    here = d.stage(current)
    i, j = d.index(current), d.index(cmd.to)
    rec = _Recorder(state, at, cmd.actor, cmd.request_id)
    if j == i:
        raise Refusal("move_not_allowed", f"deal is already at stage {cmd.to!r}")
    if j == i + 1 and here.post_sale == d.stage(cmd.to).post_sale:
        raise Refusal("move_not_allowed", f"{cmd.to!r} is the next stage: complete {current!r} instead")
    refused = refused_move(d, current, cmd.to)
    if refused is not None:
        raise Refusal("move_not_allowed", refused)
    if j > i:
        reason = _reason(here.moves.skip.reason_required, cmd.reason, f"skipping from {current!r}")
        skipped = [s.id for s in d.stages[i + 1 : j]]
        rec(StageSkipped, stage=current, to_stage=cmd.to, skipped=skipped, reason=reason)
        rec.enter(cmd.to, "skip")
    else:
        reason = _reason(here.moves.back.reason_required, cmd.reason, f"moving back from {current!r}")
        rec(MovedBack, stage=current, to_stage=cmd.to, reason=reason)
        rec.enter(cmd.to, "back")
    return rec.events


def win(state: DealState, d: ProcessDefinition, cmd: WinDeal, at: datetime) -> list[DealEvent]:
    current = _open(state, cmd.expected_stage)
    if state.status == "won":
        raise Refusal("already_won", f"deal {state.deal_id!r} is already won; complete its post-sale stages instead")
    allowed = d.won_from()
    if current not in allowed:
        raise Refusal(
            "win_not_allowed",
            f"a deal cannot be won from stage {current!r}; allowed from: {', '.join(allowed)}",
            {"allowed": allowed},
        )
    facts = check_facts(d, state, current, cmd.facts)
    offered = [r.kind.value for r in d.rebuy]
    unknown = [k for k in cmd.rebuy if k not in offered]
    if unknown:
        raise Refusal(
            "unknown_rebuy",
            f"{', '.join(unknown)}: not a follow-on of process {d.name!r} (it offers: {', '.join(offered) or 'none'})",
            {"offered": offered},
        )
    rec = _Recorder(state, at, cmd.actor, cmd.request_id)
    rec(StageCompleted, stage=current, facts=facts)
    rec(DealWon, stage=current)
    _schedule_follow_ons(rec, d, cmd.rebuy or _intents(state, facts), state)
    if d.post_sale:
        rec.enter(d.post_sale[0].id, "won")
    return rec.events


REBUY_FACT = "rebuy_intent"


def _intents(state: DealState, facts: dict[str, FactValue]) -> list[str]:
    """The follow-on kinds a rep recorded as the `rebuy_intent` fact, if the process asks it."""
    values = [v.get(REBUY_FACT) for v in state.facts.values()] + [facts.get(REBUY_FACT)]
    return [str(v) for v in values if v is not None]


def _schedule_follow_ons(
    rec: _Recorder, d: ProcessDefinition, kinds: list[str], state: DealState | None = None
) -> None:
    already = {f.kind for f in state.follow_ons} if state else set()
    for spec in d.rebuy:
        if spec.kind.value in kinds and spec.kind.value not in already:
            due = calendar.BusinessCalendar.of(d).add(rec.at, spec.delay)
            rec(FollowOnScheduled, stage=None, kind=spec.kind.value, process=spec.process, due_at=due)


def lose(state: DealState, d: ProcessDefinition, cmd: LoseDeal, at: datetime) -> list[DealEvent]:
    current = _open(state, cmd.expected_stage)
    lost = d.outcomes.lost
    if lost is None:
        raise Refusal("lose_not_allowed", f"process {d.name!r} defines no lost outcome")
    if state.status == "won":
        raise Refusal("lose_not_allowed", f"deal {state.deal_id!r} is already won")
    if current not in d.lost_from():
        raise Refusal(
            "lose_not_allowed", f"a deal cannot be lost at stage {current!r}; allowed at: {', '.join(d.lost_from())}"
        )
    if cmd.reason not in lost.reasons:
        raise Refusal(
            "unknown_reason",
            f"{cmd.reason!r} is not a lost reason of {d.name!r}; use one of: {', '.join(lost.reasons)}",
            {"reasons": list(lost.reasons)},
        )
    if state.touches < lost.min_touches_before_lost:
        raise Refusal(
            "too_few_touches",
            f"deal {state.deal_id!r} has had {state.touches} follow-up touches; the process asks for "
            f"{lost.min_touches_before_lost} before a deal may be closed as lost",
        )
    facts = typed_facts(d, current, cmd.facts)  # what the stage had learnt, e.g. the close tried
    rec = _Recorder(state, at, cmd.actor, cmd.request_id)
    rec(DealLost, stage=current, reason=cmd.reason, note=(cmd.note or "").strip() or None, facts=facts)
    return rec.events


SYSTEM_ACTOR = "dealflow"


def remind(state: DealState, rung: Rung, at: datetime) -> list[DealEvent]:
    """The events of one rung of the reminder ladder."""
    rec = _Recorder(state, at, SYSTEM_ACTOR, None)
    if rung.level == 0:
        rec(SlaBreached, stage=rung.stage, due_at=rung.due_at)
        rec(ReminderSent, stage=rung.stage, to=state.owner, due_at=rung.due_at)
    else:
        to = state.owner if rung.notify is Notify.owner else manager_of(state)
        rec(
            Escalated,
            stage=rung.stage,
            level=rung.level,
            notify=rung.notify.value,
            to=to,
            reassigned_to=rung.reassign_to,
            due_at=rung.due_at,
        )
    return rec.events


def respond(state: DealState, d: ProcessDefinition, cmd: RecordResponse, at: datetime) -> list[DealEvent]:
    """The buyer answered (or booked a meeting, unsubscribed, bounced): a fact, recorded as told.

    It takes the definition it does not need so that every rep decision has one signature.
    """
    if state.is_finished:
        raise Refusal("deal_closed", f"deal {state.deal_id!r} is {state.status}; it takes no more actions")
    rec = _Recorder(state, at, cmd.actor, cmd.request_id)
    rec(BuyerResponded, stage=state.stage, kind=cmd.kind, note=(cmd.note or "").strip() or None)
    return rec.events


def stage_mapping(old: ProcessDefinition, new: ProcessDefinition, stage_map: dict[str, str]) -> dict[str, str]:
    """Each old stage the new version keeps: under the id `stage_map` gives it, or its own."""
    out = {}
    for stage in old.stages:
        target = stage_map.get(stage.id, stage.id)
        if new.has_stage(target):
            out[stage.id] = target
    return out


def migrate(state: DealState, old: ProcessDefinition, cmd: MigrateDeal, at: datetime) -> list[DealEvent]:
    new = cmd.to.definition
    if new.name != state.process:
        raise Refusal("wrong_process", f"deal {state.deal_id!r} runs process {state.process!r}, not {new.name!r}")
    if state.version != cmd.from_version:
        raise Refusal(
            "version_mismatch",
            f"deal {state.deal_id!r} is on version {state.version}, not {cmd.from_version}",
            {"version": state.version},
        )
    if cmd.to.version == state.version:
        raise Refusal("same_version", f"deal {state.deal_id!r} is already on version {state.version}")
    if state.is_finished:
        raise Refusal("deal_closed", f"deal {state.deal_id!r} is {state.status}; it takes no more actions")
    unknown = sorted(k for k in cmd.stage_map if not old.has_stage(k))
    if unknown:
        raise Refusal(
            "unknown_stage",
            f"the stage map names {', '.join(unknown)}, not stages of version {state.version}",
            {"stages": unknown, "input": "stage_map"},
        )
    missing = sorted(v for v in cmd.stage_map.values() if not new.has_stage(v))
    if missing:
        raise Refusal(
            "stage_missing",
            f"the stage map leads to {', '.join(missing)}, not stages of version {cmd.to.version}",
            {"stages": missing, "input": "stage_map"},
        )
    mapping = stage_mapping(old, new, cmd.stage_map)
    target = None if state.stage is None else mapping.get(state.stage)
    if state.stage is not None and target is None:
        raise Refusal(
            "stage_missing",
            f"deal {state.deal_id!r} is at {state.stage!r}, which version {cmd.to.version} does not have; "
            f"map {state.stage} to one of its stages",
            {"stage": state.stage, "input": "stage_map"},
        )
    rec = _Recorder(state, at, cmd.actor, cmd.request_id)
    rec(
        MigratedToVersion,
        stage=target,
        from_version=state.version,
        to_version=cmd.to.version,
        content_hash=cmd.to.content_hash,
        from_stage=state.stage,
        stage_map=mapping,
    )
    return rec.events


def system_event(state: DealState, cls: type[Any], at: datetime, **fields: Any) -> list[DealEvent]:
    """One event recorded by the engine itself (proposals, cadence progress)."""
    rec = _Recorder(state, at, SYSTEM_ACTOR, None)
    rec(cls, **fields)
    return rec.events
