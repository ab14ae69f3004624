"""What a deal has due, and when: pure, from its definition, state and events.

A deal waits on four kinds of deadline: the next rung of its reminder ladder, a follow-on deal to
start, the launch of a cadence whose first touch is pending, and the flush of events not yet in
the log. The workflow sleeps until the earliest of them (or new work), then handles one that is
due. When several are due at once, `Due`'s order decides which goes first; the workflow then
looks again, so every one is handled in turn.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import IntEnum

from definitions.model import ProcessDefinition
from domain.calendar import compressed
from domain.events import DealEvent, DealLost, DealStarted, DealWon, MigratedToVersion
from domain.reminders import Rung, next_rung
from domain.state import DealState, FollowOn

# events that make a deal or change what it is (its start, its outcome, its version) reach the
# log, and so listings, the metrics and the next migration plan, without waiting for the flush
# window: the calls that record them return once they are there
URGENT = (DealStarted, DealWon, DealLost, MigratedToVersion)


class Due(IntEnum):
    """The kinds of deadline, in the order they are handled when several are due at once.

    A follow-on deal goes first (it is a deal of its own that someone waits for), then a cadence
    launch (a buyer's touch), then a reminder; the log flush goes last, so that it carries the
    events the others record.
    """

    FOLLOW_ON = 0
    CADENCE_LAUNCH = 1
    REMINDER = 2
    LOG_FLUSH = 3


@dataclass(frozen=True)
class Deadline:
    kind: Due
    at: datetime
    rung: Rung | None = None
    follow_on: FollowOn | None = None


@dataclass(frozen=True)
class Schedule:
    deadlines: tuple[Deadline, ...]

    @property
    def next_at(self) -> datetime | None:
        """The earliest deadline: when the deal must wake up if nothing else happens."""
        return min((d.at for d in self.deadlines), default=None)

    def due(self, now: datetime) -> list[Deadline]:
        """The deadlines that have passed by `now`, in the order they are handled."""
        return sorted((d for d in self.deadlines if d.at <= now), key=lambda d: d.kind)

    def at(self, kind: Due) -> datetime | None:
        return next((d.at for d in self.deadlines if d.kind is kind), None)

    @property
    def rung(self) -> Rung | None:
        return next((d.rung for d in self.deadlines if d.rung is not None), None)


def follow_on_due(follow_on: FollowOn, time_scale: float = 1.0) -> datetime:
    """When a follow-on deal starts: its delay after it was scheduled, compressed by the time scale."""
    return compressed(follow_on.scheduled_at, follow_on.due_at, time_scale)


def next_follow_on(state: DealState, time_scale: float = 1.0) -> FollowOn | None:
    """The pending follow-on deal due first."""
    pending = state.pending_follow_ons
    return min(pending, key=lambda f: follow_on_due(f, time_scale)) if pending else None


def flush_due(events: Sequence[DealEvent], persisted_seq: int, window: timedelta, now: datetime) -> datetime | None:
    """When the events not yet in the log must be appended: a flush window after the first of
    them, or now if one of them is urgent; None when every event is in the log.

    Gathering a deal's events costs the rep nothing (an update answers before its events are
    appended) and saves an activity and a workflow task for every action folded into the batch;
    the log trails the deal by at most the window.
    """
    if not events or events[-1].seq <= persisted_seq:
        return None
    first = events[-1]
    for event in reversed(events):
        if event.seq <= persisted_seq:
            break
        if isinstance(event, URGENT):
            return now
        first = event
    return first.at + window


def schedule(
    definition: ProcessDefinition,
    state: DealState,
    *,
    cadence_launch: datetime | None,
    log_flush: datetime | None,
    time_scale: float = 1.0,
) -> Schedule:
    """Every deadline the deal has now."""
    deadlines: list[Deadline] = []
    rung = next_rung(definition, state, time_scale)
    if rung is not None:
        deadlines.append(Deadline(Due.REMINDER, rung.due_at, rung=rung))
    follow_on = next_follow_on(state, time_scale)
    if follow_on is not None:
        deadlines.append(Deadline(Due.FOLLOW_ON, follow_on_due(follow_on, time_scale), follow_on=follow_on))
    if cadence_launch is not None:
        deadlines.append(Deadline(Due.CADENCE_LAUNCH, cadence_launch))
    if log_flush is not None:
        deadlines.append(Deadline(Due.LOG_FLUSH, log_flush))
    return Schedule(tuple(deadlines))
