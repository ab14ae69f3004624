"""Who did what, when: a deal's timeline, rebuilt from Temporal's history.

Rep requests come from the accepted updates (with actor, request id and the payload as sent);
what the engine did and what the requests caused come from the events the deal recorded.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from temporalio.client import WorkflowHistory

from audit.history import events_in, rep_actions, workflow_type
from domain import proposal_files
from domain.events import DealEvent

_ENGINE = {
    "SlaBreached": "reminder",
    "ReminderSent": "reminder",
    "Escalated": "escalation",
    "ProposalGenerated": "proposal",
    "ProposalFailed": "proposal",
    "CadenceStarted": "cadence",
    "TouchScheduled": "touch",
    "TouchSent": "touch",
    "TouchFailed": "touch",
    "CadenceStopped": "cadence",
    "CadenceCompleted": "cadence",
    "DealWon": "outcome",
    "DealLost": "outcome",
    "DealClosed": "outcome",
}
_SKIP = {"seq", "at", "actor", "stage", "request_id", "type"}


@dataclass(frozen=True)
class Entry:
    at: datetime
    kind: str  # request, event, reminder, escalation, proposal, cadence, touch, outcome
    what: str
    actor: str
    request_id: str | None
    stage: str | None
    details: dict[str, Any]
    seq: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "at": self.at.isoformat(),
            "kind": self.kind,
            "what": self.what,
            "actor": self.actor,
            "request_id": self.request_id,
            "stage": self.stage,
            "seq": self.seq,
            "details": self.details,
        }


def _entry(event: DealEvent) -> Entry:
    # a proposal's files by their place in the proposals directory, as every reader is shown them
    details = {k: v for k, v in proposal_files.readable(event).model_dump(mode="json").items() if k not in _SKIP}
    return Entry(
        event.at,
        _ENGINE.get(event.type, "event"),
        event.type,
        event.actor,
        event.request_id,
        event.stage,
        details,
        event.seq,
    )


def logged_timeline(events: list[DealEvent]) -> list[Entry]:
    """The timeline of a deal no workflow ever ran (a closed deal imported from a CRM): its events
    as the log holds them, which is all there is of it."""
    return sorted((_entry(e) for e in events), key=lambda e: (e.at, e.seq or 0))


def timeline(histories: list[WorkflowHistory]) -> list[Entry]:
    entries: list[Entry] = []
    seen: set[int] = set()
    for history in histories:
        if workflow_type(history) != "Deal":
            continue
        for action in rep_actions(history):
            entries.append(
                Entry(
                    action.at,
                    "request",
                    action.update,
                    str(action.payload.get("actor", "?")),
                    action.payload.get("request_id") or action.update_id,
                    None,
                    {k: v for k, v in action.payload.items() if k not in {"actor", "request_id"}},
                )
            )
        for event in events_in(history):
            if event.seq in seen:
                continue
            seen.add(event.seq)
            entries.append(_entry(event))
    # requests before the events they caused; events by sequence
    entries.sort(key=lambda e: (e.at, 0 if e.kind == "request" else 1, e.seq or 0))
    return entries
