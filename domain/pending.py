"""What a deal will do by itself next, and when: for the people who read it, before it happens.

The deal workflow only needs the earliest deadline (`domain.schedule`); a rep or a manager wants
to see the whole road ahead: every rung of the reminder ladder not fired yet (the deadline, then
each escalation), and every touch of the running cadence not sent yet. Everything here comes from
the logged events and the pinned definition: the same ladder and the same business calendar (the
pinned holidays) the workflow counts with, so what is shown is what will happen if nothing
changes. A touch's time is the one the cadence recorded (`TouchScheduled`) for the next touch;
the touches after it are *expected*: their delays counted on from it, as the cadence will when
each touch before them goes when due.

Deals started with a time scale (simulations only) compress their waits; their times here are
the real calendar's.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Literal

from pydantic import BaseModel

from definitions.model import Notify, ProcessDefinition
from domain.calendar import BusinessCalendar
from domain.events import CadenceStarted, DealEvent, TouchFailed, TouchScheduled, TouchSent
from domain.reminders import Rung, ladder
from domain.state import DealState


class Pending(BaseModel):
    """One thing the deal will do when its time comes, unless something changes first."""

    kind: Literal["reminder", "escalation", "touch"]
    due_at: datetime
    stage: str | None
    level: int | None = None  # a rung of the ladder: 0 the deadline, n the n-th escalation
    touch_no: int | None = None
    cadence: str | None = None
    expected: bool = False  # a touch after the next: when it goes if each one before it goes when due
    text: str


def pending(d: ProcessDefinition, state: DealState, events: Sequence[DealEvent]) -> list[Pending]:
    """Every pending rung and touch of a running deal, soonest first."""
    if state.is_finished:
        return []
    found = [_rung(r) for r in ladder(d, state)[state.reminders_fired :]]
    found += _touches(d, state, events)
    return sorted(found, key=lambda p: (p.due_at, p.kind != "touch", p.level or 0, p.touch_no or 0))


def _rung(rung: Rung) -> Pending:
    who = "the owner" if rung.notify is Notify.owner else "the manager"
    if rung.level == 0:
        text = f"deadline of stage {rung.stage}: {who} is reminded"
        return Pending(kind="reminder", due_at=rung.due_at, stage=rung.stage, level=0, text=text)
    text = f"escalation {rung.level} of stage {rung.stage}: {who} is notified"
    if rung.reassign_to:
        text += f" and the deal goes to {rung.reassign_to}"
    return Pending(kind="escalation", due_at=rung.due_at, stage=rung.stage, level=rung.level, text=text)


def _touches(d: ProcessDefinition, state: DealState, events: Sequence[DealEvent]) -> list[Pending]:
    run = state.cadence
    if run is None:
        return []
    started = next((e for e in events if isinstance(e, CadenceStarted) and e.cadence_run == run), None)
    if started is None:
        return []
    scheduled = {e.touch_no: e for e in events if isinstance(e, TouchScheduled) and e.cadence_run == run}
    done = [e for e in events if isinstance(e, TouchSent | TouchFailed) and e.cadence_run == run]
    cadence = next((c for c in d.cadences if c.id == started.cadence), None)
    calendar = BusinessCalendar.of(d)
    out: list[Pending] = []
    previous: datetime | None = done[-1].at if done else None
    for touch_no in range(max((e.touch_no for e in done), default=0) + 1, started.touches + 1):
        known = scheduled.get(touch_no)
        touch = cadence.touches[touch_no - 1] if cadence and touch_no <= len(cadence.touches) else None
        if known is not None and not out:
            due, channel, expected = known.due_at, known.channel, False
        elif touch is not None and previous is not None:
            due, channel, expected = calendar.add(previous, touch.delay), touch.channel, True
        else:
            break  # a cadence the deal's version no longer has: only its recorded touch is known
        words = f"touch {touch_no} of {started.touches} of cadence {started.cadence}, by {channel}"
        if expected:
            words += f" (expected: if touch {touch_no - 1} goes when due)" if out else " (expected)"
        out.append(
            Pending(
                kind="touch",
                due_at=due,
                stage=started.stage,
                touch_no=touch_no,
                cadence=started.cadence,
                expected=expected,
                text=words,
            )
        )
        previous = due
    return out
