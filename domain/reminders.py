"""Where a deal's reminder ladder stands: pure, from the definition and the state.

A stage with a reminder has a ladder: rung 0 at the deadline (the SLA is breached and the owner
reminded), then one rung per escalation, each `after` the previous one. The ladder restarts
whenever the deal enters a stage, and stops when the deal ends: the workflow simply sleeps until
the next rung that has not fired.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict

from definitions.model import Notify, ProcessDefinition
from domain.calendar import BusinessCalendar, compressed
from domain.state import DealState


class Rung(BaseModel):
    model_config = ConfigDict(frozen=True)

    level: int  # 0: the deadline; n: the n-th escalation
    stage: str
    due_at: datetime
    notify: Notify
    reassign_to: str | None = None


def ladder(d: ProcessDefinition, state: DealState, time_scale: float = 1.0) -> list[Rung]:
    if state.is_finished or state.stage is None or state.stage_entered_at is None:
        return []
    reminder = d.stage(state.stage).reminder
    if reminder is None:
        return []
    calendar = BusinessCalendar.of(d)  # business days skip the holidays pinned in the definition
    start = state.stage_entered_at
    real = calendar.add(start, reminder.deadline)
    rungs = [Rung(level=0, stage=state.stage, due_at=compressed(start, real, time_scale), notify=Notify.owner)]
    for level, step in enumerate(reminder.escalations, start=1):
        real = calendar.add(real, step.after)
        rungs.append(
            Rung(
                level=level,
                stage=state.stage,
                due_at=compressed(start, real, time_scale),
                notify=step.notify,
                reassign_to=step.reassign_to,
            )
        )
    return rungs


def next_rung(d: ProcessDefinition, state: DealState, time_scale: float = 1.0) -> Rung | None:
    rungs = ladder(d, state, time_scale)
    return rungs[state.reminders_fired] if state.reminders_fired < len(rungs) else None


def manager_of(state: DealState) -> str:
    """Who a deal escalates to: the deal's `manager` field, else the owner's manager by role name."""
    return state.fields.get("manager") or f"manager-of-{state.owner}"
