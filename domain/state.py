"""The deal's state as a left fold over its events.

`apply` is the only place state changes; the workflow, the audit `as-of` command and the tests
all use it, so the state they see is the same by construction. It needs no definition: the
events say everything that happened.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict

from domain.events import (
    BuyerResponded,
    CadenceCompleted,
    CadenceStarted,
    CadenceStopped,
    DealClosed,
    DealEvent,
    DealImported,
    DealLost,
    DealStarted,
    DealWon,
    Escalated,
    Facts,
    FollowOnFailed,
    FollowOnScheduled,
    FollowOnStarted,
    HandedOff,
    MigratedToVersion,
    MovedBack,
    ProposalFailed,
    ProposalGenerated,
    ReminderSent,
    SlaBreached,
    StageCompleted,
    StageEntered,
    StageSkipped,
    TouchFailed,
    TouchScheduled,
    TouchSent,
)

Status = Literal["open", "won", "lost"]


class RequestRecord(BaseModel):
    """What a rep request produced, so a repeat of it can answer the same without recording."""

    model_config = ConfigDict(frozen=True)

    first_seq: int
    last_seq: int
    stage: str | None
    status: Status


class FollowOn(BaseModel):
    model_config = ConfigDict(frozen=True)

    kind: str
    process: str
    scheduled_at: datetime
    due_at: datetime
    deal_id: str | None = None  # set once started
    error: str | None = None  # set if it could not be started

    @property
    def pending(self) -> bool:
        return self.deal_id is None and self.error is None


class DealState(BaseModel):
    model_config = ConfigDict(frozen=True)

    deal_id: str = ""
    process: str = ""
    version: str = ""
    owner: str = ""
    value: float | None = None
    fields: dict[str, str] = {}
    experiment: str | None = None
    follows: str | None = None
    follow_kind: str | None = None
    follow_ons: list[FollowOn] = []
    team: str | None = None
    status: Status = "open"
    stage: str | None = None
    stage_entered_at: datetime | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None
    lost_reason: str | None = None
    facts: dict[str, Facts] = {}
    visits: dict[str, int] = {}
    last_seq: int = 0
    requests: dict[str, RequestRecord] = {}
    reminders_fired: int = 0  # rungs of the current visit's ladder already fired
    sla_breaches: int = 0
    proposals: dict[str, str] = {}  # template -> content hash of the latest document
    cadence: str | None = None  # the running cadence's run id
    cadence_id: str | None = None  # and which of the definition's cadences it runs
    cadence_runs: int = 0
    touches: int = 0  # touches sent, over all cadences
    touches_failed: int = 0
    buyer_responses: list[str] = []

    @property
    def pending_follow_ons(self) -> list[FollowOn]:
        return [f for f in self.follow_ons if f.pending]

    @property
    def is_finished(self) -> bool:
        """Lost, or won with no post-sale stage left: the workflow may end."""
        return self.status == "lost" or (self.status == "won" and self.stage is None)

    @property
    def may_end(self) -> bool:
        """Finished, with no follow-on deal left to start: its workflow may end."""
        return self.is_finished and not self.pending_follow_ons


def apply(state: DealState, event: DealEvent) -> DealState:
    """Return the state after one event. Events must arrive in sequence order."""
    if event.seq != state.last_seq + 1:
        raise ValueError(f"event seq {event.seq} does not follow {state.last_seq} in deal {state.deal_id!r}")
    changes: dict[str, object] = {"last_seq": event.seq}
    match event:
        case DealStarted():
            changes.update(
                deal_id=event.deal_id,
                process=event.process,
                version=event.version,
                owner=event.owner,
                value=event.value,
                fields=dict(event.fields),
                experiment=event.experiment,
                follows=event.follows,
                follow_kind=event.follow_kind,
                team=event.team,
                started_at=event.at,
            )
        case StageEntered():
            assert event.stage is not None
            visits = dict(state.visits)
            visits[event.stage] = visits.get(event.stage, 0) + 1
            changes.update(stage=event.stage, stage_entered_at=event.at, visits=visits, reminders_fired=0)
        case StageCompleted():
            assert event.stage is not None
            facts = {k: dict(v) for k, v in state.facts.items()}
            facts.setdefault(event.stage, {}).update(event.facts)
            changes.update(facts=facts)
        case StageSkipped() | MovedBack():
            pass  # the StageEntered that follows moves the deal
        case DealWon():
            changes.update(status="won", stage=None, stage_entered_at=None, ended_at=event.at)
        case DealLost():
            changes.update(
                status="lost", stage=None, stage_entered_at=None, ended_at=event.at, lost_reason=event.reason
            )
            if event.facts and event.stage is not None:
                facts = {k: dict(v) for k, v in state.facts.items()}
                facts.setdefault(event.stage, {}).update(event.facts)
                changes.update(facts=facts)
        case DealClosed():
            changes.update(stage=None, stage_entered_at=None, ended_at=event.at)
        case SlaBreached():
            changes.update(reminders_fired=1, sla_breaches=state.sla_breaches + 1)
        case ReminderSent() | TouchScheduled():
            pass
        case Escalated():
            changes.update(reminders_fired=event.level + 1)
            if event.reassigned_to:
                changes.update(owner=event.reassigned_to)
        case HandedOff():
            changes.update(owner=event.to_owner)
        case DealImported():
            pass  # provenance only: the events around it carry the history
        case ProposalGenerated():
            changes.update(proposals={**state.proposals, event.template: event.content_hash})
        case ProposalFailed():
            pass
        case CadenceStarted():
            changes.update(cadence=event.cadence_run, cadence_id=event.cadence, cadence_runs=state.cadence_runs + 1)
        case TouchSent():
            changes.update(touches=state.touches + 1)
        case TouchFailed():
            changes.update(touches_failed=state.touches_failed + 1)
        case CadenceStopped() | CadenceCompleted():
            if state.cadence == event.cadence_run:
                changes.update(cadence=None, cadence_id=None)
        case BuyerResponded():
            changes.update(buyer_responses=[*state.buyer_responses, event.kind])
        case FollowOnScheduled():
            planned = FollowOn(kind=event.kind, process=event.process, scheduled_at=event.at, due_at=event.due_at)
            changes.update(follow_ons=[*state.follow_ons, planned])
        case FollowOnStarted():
            changes.update(
                follow_ons=[
                    f.model_copy(update={"deal_id": event.deal_id}) if f.kind == event.kind and f.pending else f
                    for f in state.follow_ons
                ]
            )
        case FollowOnFailed():
            changes.update(
                follow_ons=[
                    f.model_copy(update={"error": event.error}) if f.kind == event.kind and f.pending else f
                    for f in state.follow_ons
                ]
            )
        case MigratedToVersion():
            rename = event.stage_map
            renamed_facts: dict[str, Facts] = {}
            for stage, recorded in state.facts.items():  # two old stages may become one
                renamed_facts.setdefault(rename.get(stage, stage), {}).update(recorded)
            renamed_visits: dict[str, int] = {}
            for stage, n in state.visits.items():
                renamed_visits[rename.get(stage, stage)] = renamed_visits.get(rename.get(stage, stage), 0) + n
            changes.update(version=event.to_version, stage=event.stage, facts=renamed_facts, visits=renamed_visits)
    new = state.model_copy(update=changes)
    if event.request_id is not None:
        previous = state.requests.get(event.request_id)
        record = RequestRecord(
            first_seq=previous.first_seq if previous else event.seq,
            last_seq=event.seq,
            stage=new.stage,
            status=new.status,
        )
        new = new.model_copy(update={"requests": {**state.requests, event.request_id: record}})
    return new


def fold(events: Iterable[DealEvent], state: DealState | None = None) -> DealState:
    current = state or DealState()
    for event in events:
        current = apply(current, event)
    return current


def as_of(events: Iterable[DealEvent], instant: datetime) -> DealState:
    """The state as it stood at `instant`: the fold of the events that had happened by then."""
    return fold(e for e in events if e.at <= instant)
