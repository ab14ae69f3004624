"""Where a deal's server work goes: what Temporal recorded for each bench deal, counted from the
histories after a run, against the bare workflow's.

Counts, not timings: the history events, the workflow tasks (and what woke each one: the start,
an update, an activity's result, a timer, a child workflow, a signal), the activity tasks by
activity type, the local activities, timers, updates and child workflows. A deal's count is that
of every run of its workflow and of every cadence it started (`audit.history.fetch_deal`). They
are exact for the run they were read from, but they depend on its pace: events a deal's loop
gathers within its flush window go out in one append, and updates that arrive while a workflow
task runs are taken by the next one, so the figures are given per deal as a median, min, max
and mean over the run's deals.
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Iterable
from typing import Any

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHistory

from audit.history import LOCAL_ACTIVITY_MARKER, fetch_deal

E = EventType
# the events that make Temporal schedule a workflow task, by what they are called in the results
WAKES = {
    E.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED: "start",
    E.EVENT_TYPE_ACTIVITY_TASK_COMPLETED: "activity result",
    E.EVENT_TYPE_ACTIVITY_TASK_FAILED: "activity result",
    E.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT: "activity result",
    E.EVENT_TYPE_ACTIVITY_TASK_CANCELED: "activity result",
    E.EVENT_TYPE_TIMER_FIRED: "timer",
    E.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED: "signal",
    E.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_STARTED: "child workflow",
    E.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_COMPLETED: "child workflow",
    E.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_FAILED: "child workflow",
    E.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_CANCELED: "child workflow",
    E.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_TERMINATED: "child workflow",
    E.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_TIMED_OUT: "child workflow",
    E.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_FAILED: "child workflow",
    E.EVENT_TYPE_WORKFLOW_EXECUTION_CANCEL_REQUESTED: "cancel request",
}
TASK_ENDS = {
    E.EVENT_TYPE_WORKFLOW_TASK_COMPLETED,
    E.EVENT_TYPE_WORKFLOW_TASK_FAILED,
    E.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT,
}


def _name(kind: int) -> str:
    return E.Name(kind).removeprefix("EVENT_TYPE_").lower()  # type: ignore[arg-type]


def count(histories: Iterable[WorkflowHistory]) -> Counter[str]:
    """One deal's counts, summed over its workflows' histories; keys `events`, `workflow_tasks`,
    `activity_tasks`, `local_activities`, `timers`, `updates`, `child_workflows`, then
    `event:TYPE`, `activity:TYPE` and `woken_by:CAUSE` (a task woken by two causes at once
    counts under both joined by `+`; `retry` is a task scheduled again after one failed)."""
    out: Counter[str] = Counter()
    for history in histories:
        events = history.events
        out["events"] += len(events)
        wakes: set[str] = set()
        pending: int | None = None  # the index of a scheduled task whose cause is still unknown
        for i, e in enumerate(events):
            kind = e.event_type
            out[f"event:{_name(kind)}"] += 1
            if kind in WAKES:
                wakes.add(WAKES[kind])
            elif kind == E.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED:
                out["workflow_tasks"] += 1
                pending = i
                if i and events[i - 1].event_type in TASK_ENDS - {E.EVENT_TYPE_WORKFLOW_TASK_COMPLETED}:
                    wakes.add("retry")
            elif kind in TASK_ENDS and pending is not None:
                # an update is delivered in the task itself: it shows as accepted right after it
                accepted = i + 1 < len(events) and events[i + 1].event_type in (
                    E.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED,
                    E.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_REJECTED,
                )
                if accepted or not wakes:
                    wakes.add("update" if accepted else "other")
                out[f"woken_by:{'+'.join(sorted(wakes))}"] += 1
                wakes, pending = set(), None
            elif kind == E.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
                out["activity_tasks"] += 1
                out[f"activity:{e.activity_task_scheduled_event_attributes.activity_type.name}"] += 1
            elif kind == E.EVENT_TYPE_MARKER_RECORDED:
                out["local_activities"] += e.marker_recorded_event_attributes.marker_name == LOCAL_ACTIVITY_MARKER
            elif kind == E.EVENT_TYPE_TIMER_STARTED:
                out["timers"] += 1
            elif kind == E.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED:
                out["updates"] += 1
            elif kind == E.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED:
                out["child_workflows"] += 1
    return out


def summary(per_deal: list[Counter[str]]) -> dict[str, Any]:
    """The run's deals: each count's median, min, max and mean per deal."""
    keys = sorted({k for c in per_deal for k in c})

    def spread(key: str) -> dict[str, float]:
        values = [c[key] for c in per_deal]
        return {
            "median": statistics.median(values),
            "min": min(values),
            "max": max(values),
            "mean": round(statistics.fmean(values), 2),
        }

    main = ["events", "workflow_tasks", "activity_tasks", "local_activities", "timers", "updates", "child_workflows"]
    out: dict[str, Any] = {"deals": len(per_deal), **{k: spread(k) for k in main}}
    for prefix in ("woken_by", "activity", "event"):
        out[f"{prefix}_mean"] = {
            k.split(":", 1)[1]: round(statistics.fmean(c[k] for c in per_deal), 2)
            for k in keys
            if k.startswith(f"{prefix}:")
        }
    return out


async def per_deal(temporal: Client, deal_ids: list[str], bare_ids: list[str]) -> dict[str, Any]:
    """The counts of the given bench deals and bare workflows, and their ratios (means)."""
    ours = summary([count(await fetch_deal(temporal, d)) for d in deal_ids])
    bare = summary([count([await temporal.get_workflow_handle(w).fetch_history()]) for w in bare_ids])
    ratios = {k: round(ours[k]["mean"] / bare[k]["mean"], 2) for k in ("events", "workflow_tasks") if bare[k]["mean"]}
    return {"dealflow": ours, "bare": bare, "ratio_of_means": ratios}
