"""What the outside world must see happen because of an event: pure, so replay agrees.

The deal workflow records an event, asks `effects_of` what it calls for, and runs those effects
(handoffs, notifications, proposals, starting and stopping the follow-up cadence) in its main
loop. A definition without teams never calls for a handoff, so its deals send Temporal exactly
the commands they sent before teams existed.
"""

from __future__ import annotations

from pydantic import BaseModel

from definitions.model import ProcessDefinition, StopCondition
from domain.events import (
    BuyerResponded,
    DealEvent,
    DealLost,
    DealWon,
    Escalated,
    HandedOff,
    MigratedToVersion,
    ReminderSent,
    StageEntered,
)
from domain.handoffs import team_to_hand_to
from domain.notifications import escalation_text, handoff_text, reminder_text
from domain.state import DealState


class Notify(BaseModel):
    seq: int
    to: str
    subject: str
    body: str


class HandOver(BaseModel):
    """Hand the deal to a member of `team`: it entered `stage` (by event `entry_seq`), which the
    team owns, and its owner is not a member."""

    entry_seq: int
    stage: str
    team: str


class MakeProposal(BaseModel):
    template: str


class StartCadence(BaseModel):
    cadence: str


class StopCadence(BaseModel):
    reason: str


Effect = HandOver | Notify | MakeProposal | StartCadence | StopCadence


def effects_of(definition: ProcessDefinition, state: DealState, event: DealEvent) -> list[Effect]:
    """The effects of `event`, given the state it led to."""
    running = state.cadence
    match event:
        case StageEntered(stage=str(stage_id)):
            stage = definition.stage(stage_id)
            # the handoff first: the proposal and the cadence then speak for the new owner
            out: list[Effect] = _hand_over(definition, state, event.seq, stage_id)
            if stage.proposal_template:
                out.append(MakeProposal(template=stage.proposal_template))
            if stage.cadence and running is None:
                out.append(StartCadence(cadence=stage.cadence))
            return out
        case ReminderSent():
            text = reminder_text(state)
            return [Notify(seq=event.seq, to=event.to, subject=text.subject, body=text.body)]
        case Escalated():
            text = escalation_text(state, event)
            return [Notify(seq=event.seq, to=event.to, subject=text.subject, body=text.body)]
        case MigratedToVersion(stage=str(stage_id)):
            # a new version may give the stage to a team (or change its members): the deal
            # goes to it as if it had just entered the stage
            migrated: list[Effect] = _hand_over(definition, state, event.seq, stage_id)
            cadence = definition.stage(stage_id).cadence
            return migrated + ([StartCadence(cadence=cadence)] if cadence and running is None else [])
        case HandedOff():
            text = handoff_text(state, event)
            return [Notify(seq=event.seq, to=event.to_owner, subject=text.subject, body=text.body)]
        case BuyerResponded(kind=kind) if running and kind in stop_on(definition, state):
            return [StopCadence(reason=kind)]
        case DealWon() | DealLost() if running and StopCondition.deal_ended in stop_on(definition, state):
            return [StopCadence(reason=StopCondition.deal_ended.value)]
    return []


def _hand_over(definition: ProcessDefinition, state: DealState, seq: int, stage: str) -> list[Effect]:
    team = team_to_hand_to(definition, state, stage)
    return [] if team is None else [HandOver(entry_seq=seq, stage=stage, team=team.id)]


def stop_on(definition: ProcessDefinition, state: DealState) -> list[str]:
    """What stops the running cadence; after a migration its cadence may be gone from the
    definition, and then anything that stops a cadence stops it."""
    if state.cadence_id is None:
        return []
    try:
        return [s.value for s in definition.cadence(state.cadence_id).stop_on]
    except KeyError:
        return [s.value for s in StopCondition]


def template_values(definition: ProcessDefinition, state: DealState) -> dict[str, str]:
    """Everything a template may say: built-ins, deal fields and the facts recorded so far."""
    values = dict(state.fields)
    for facts in state.facts.values():
        values.update({k: str(v) for k, v in facts.items()})
    builtins = {
        "deal_id": state.deal_id,
        "owner": state.owner,
        "process": state.process,
        "version": state.version,
        "process_title": definition.title or state.process,
        "value": "" if state.value is None else f"{state.value:,.2f}",
    }
    values.update({k: v for k, v in builtins.items() if v})
    return values
