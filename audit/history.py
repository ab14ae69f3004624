"""Reading what Temporal recorded about a deal: its runs, its cadences, its events and actions.

The deal workflow hands every domain event to the `append_events` activity, so Temporal's history
holds the deal's whole event sequence, independently of the PostgreSQL log: in the inputs of the
scheduled activities (and, for histories of revision 3, which appended some batches in local
activities whose input Temporal does not keep, in the receipts their markers record). The
accepted updates hold every rep request as it was made.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel
from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import Client, WorkflowHistory
from temporalio.service import RPCError, RPCStatusCode

from domain.activity_io import APPEND_EVENTS, AppendEvents, AppendReceipt
from domain.commands import DealInput, workflow_id
from domain.events import DealEvent, legacy

M = TypeVar("M", bound=BaseModel)
BUNDLE_FORMAT = "dealflow-audit-bundle/1"
LOCAL_ACTIVITY_MARKER = "core_local_activity"  # the marker the SDK records for a local activity


class AuditError(RuntimeError):
    """An audit could not be carried out (unknown deal, unreadable file); names the cause."""


@dataclass(frozen=True)
class RepAction:
    at: datetime
    update: str
    update_id: str
    payload: dict[str, Any]


def _with_events(payloads: Any, cls: type[M], field: str) -> M:
    """A payload that carries events (a batch, a run's input, a receipt), each event read as a
    stored one: a history outlives the code that wrote it, so an event without a schema version
    is of version 1 (domain.events.legacy)."""
    data = json.loads(payloads[0].data)
    data[field] = [legacy(e) for e in data.get(field) or []]
    return cls.model_validate(data)


def _args(payloads: Any) -> list[Any]:
    """Update arguments as plain JSON (the audit must read them even if the model changed)."""
    return [json.loads(p.data) if p.data else None for p in payloads]


def events_in(history: WorkflowHistory) -> list[DealEvent]:
    """The domain events one run of a deal carried out to the event log, plus those it was
    started with (continue-as-new)."""
    found: dict[int, DealEvent] = {}
    for e in history.events:
        if e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED:
            attrs = e.workflow_execution_started_event_attributes
            if attrs.workflow_type.name == "Deal" and attrs.input.payloads:
                started = _with_events(attrs.input.payloads, DealInput, "carried_events")
                found.update({ev.seq: ev for ev in started.carried_events[: started.persisted_seq]})
        elif e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            scheduled = e.activity_task_scheduled_event_attributes
            if scheduled.activity_type.name == APPEND_EVENTS:
                batch = _with_events(scheduled.input.payloads, AppendEvents, "events")
                found.update({ev.seq: ev for ev in batch.events})
        elif (receipt := append_receipt(e)) is not None:
            found.update({ev.seq: ev for ev in receipt.events})
    return [found[s] for s in sorted(found)]


def append_receipt(event: HistoryEvent) -> AppendReceipt | None:
    """The receipt recorded by a local `append_events`, or None for any other event (or attempt
    that failed)."""
    if event.event_type != EventType.EVENT_TYPE_MARKER_RECORDED:
        return None
    marker = event.marker_recorded_event_attributes
    if marker.marker_name != LOCAL_ACTIVITY_MARKER or "result" not in marker.details:
        return None
    data = marker.details.get("data")
    meta = json.loads(data.payloads[0].data) if data and data.payloads else {}
    if meta.get("activity_type") != APPEND_EVENTS:
        return None
    return _with_events(marker.details["result"].payloads, AppendReceipt, "events")


CLOSED = {
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED,
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED,
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_TIMED_OUT,
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CANCELED,
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED,
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW,
}


def own_runs(histories: list[WorkflowHistory]) -> list[WorkflowHistory]:
    """The runs of the deal itself. `fetch_deal` lists them first, then its children; a rebuy
    follow-on is a child Deal workflow, a deal of its own with a log of its own, so its events
    are never taken for the parent's."""
    deals = [h for h in histories if workflow_type(h) == "Deal"]
    return [h for h in deals if h.workflow_id == deals[0].workflow_id] if deals else []


def pending_appends(histories: list[WorkflowHistory]) -> dict[str, list[int]]:
    """The appends Temporal has scheduled but not yet seen complete, by activity id, with their
    events: the log may or may not hold them yet (an append commits before its activity reports
    back). Only a run still open has any: a closed run's unfinished append never will finish."""
    pending: dict[str, list[int]] = {}
    for history in own_runs(histories):
        if history.events and history.events[-1].event_type in CLOSED:
            continue
        scheduled: dict[int, tuple[str, list[int]]] = {}
        for e in history.events:
            if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
                attrs = e.activity_task_scheduled_event_attributes
                if attrs.activity_type.name == APPEND_EVENTS:
                    batch = _with_events(attrs.input.payloads, AppendEvents, "events")
                    scheduled[e.event_id] = (attrs.activity_id, [ev.seq for ev in batch.events])
            elif e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
                scheduled.pop(e.activity_task_completed_event_attributes.scheduled_event_id, None)
        pending.update(scheduled.values())
    return pending


def in_flight(histories: list[WorkflowHistory]) -> set[int]:
    """The events of the appends `pending_appends` finds."""
    return {seq for seqs in pending_appends(histories).values() for seq in seqs}


def deal_events(histories: list[WorkflowHistory]) -> list[DealEvent]:
    """The deal's events as Temporal recorded them, over all of its runs (cadences and follow-on
    deals left out)."""
    found = {e.seq: e for h in own_runs(histories) for e in events_in(h)}
    return [found[s] for s in sorted(found)]


def rep_actions(history: WorkflowHistory) -> list[RepAction]:
    out = []
    for e in history.events:
        if e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED:
            request = e.workflow_execution_update_accepted_event_attributes.accepted_request
            args = _args(request.input.args.payloads)
            out.append(
                RepAction(
                    at=e.event_time.ToDatetime().replace(tzinfo=UTC),
                    update=request.input.name,
                    update_id=request.meta.update_id,
                    payload=args[0] if args and isinstance(args[0], dict) else {"args": args},
                )
            )
    return out


def child_ids(history: WorkflowHistory) -> list[str]:
    return [
        e.start_child_workflow_execution_initiated_event_attributes.workflow_id
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED
    ]


def workflow_type(history: WorkflowHistory) -> str:
    first: HistoryEvent = history.events[0]
    return str(first.workflow_execution_started_event_attributes.workflow_type.name)


async def deal_runs(client: Client, deal_id: str) -> list[WorkflowHistory]:
    """Every run of the deal itself, oldest first (none: Temporal does not know it)."""
    return await _runs(client, workflow_id(deal_id))


async def fetch_deal(client: Client, deal_id: str) -> list[WorkflowHistory]:
    """Every run of the deal (oldest first) and every run of its cadences."""
    histories = await deal_runs(client, deal_id)
    if not histories:
        raise AuditError(f"Temporal has no history for deal {deal_id!r} (workflow {workflow_id(deal_id)})")
    children: list[str] = []
    for h in histories:
        children += [c for c in child_ids(h) if c not in children]
    for child in children:
        histories += await _runs(client, child)
    return histories


async def _runs(client: Client, wid: str) -> list[WorkflowHistory]:
    """Every run of a workflow, oldest first, following continue-as-new back from the latest.

    Needs no visibility store, so it works on every Temporal server, the test server included.
    """
    try:
        latest = await client.get_workflow_handle(wid).fetch_history()
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            return []
        raise
    runs = [latest]
    while previous := runs[0].events[0].workflow_execution_started_event_attributes.continued_execution_run_id:
        runs.insert(0, await client.get_workflow_handle(wid, run_id=previous).fetch_history())
    return runs


def load_json(path: Path) -> tuple[list[WorkflowHistory], dict[str, Any] | None]:
    """Histories from a file: one exported by `temporal workflow show --output json`, or a bundle."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise AuditError(f"cannot read {path}: {exc}") from exc
    if isinstance(data, dict) and data.get("format") == BUNDLE_FORMAT:
        histories = [WorkflowHistory.from_json(h["workflow_id"], h["history"]) for h in data["histories"]]
        return histories, data
    if not isinstance(data, dict) or "events" not in data:
        raise AuditError(f"{path} is neither a Temporal history (with 'events') nor a dealflow bundle")
    # a CLI export does not name its workflow: the file name stands in for it in reports
    return [WorkflowHistory.from_json(path.stem, data)], None


def to_json(history: WorkflowHistory) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(history.to_json())
    return loaded
