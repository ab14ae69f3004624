"""Adding durations to instants the way a sales team counts them.

"5 business days" from Friday 16:00 in Oslo is the following Friday 16:00 Oslo time, whatever
daylight saving did in between, and one day later if a public holiday falls in that week;
"48 hours" is 48 hours. Pure and deterministic (the time zone data and the pinned holiday dates
are read, never the clock nor the `holidays` package), so the deal workflow can use it to place
its timers.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from definitions.durations import Duration
from definitions.model import ProcessDefinition

WEEKDAYS = frozenset({0, 1, 2, 3, 4})


@dataclass(frozen=True)
class BusinessCalendar:
    """When a process works: its time zone, its working weekdays and its days off.

    The holidays are the plain dates pinned into the definition at deploy, so a deal's deadlines
    stay where they were whatever the installed `holidays` package says later.
    """

    timezone: str = "UTC"
    business_days: frozenset[int] = WEEKDAYS
    holidays: frozenset[date] = frozenset()

    @classmethod
    def of(cls, d: ProcessDefinition) -> BusinessCalendar:
        return cls(d.timezone, frozenset(d.business_days), frozenset(d.holiday_dates))

    def is_business_day(self, day: date) -> bool:
        return day.weekday() in self.business_days and day not in self.holidays

    def add(self, start: datetime, duration: Duration) -> datetime:
        """`start` plus `duration`; business days keep the local wall-clock time and skip
        non-working weekdays and holidays.

        A start on a day off counts from that day's wall-clock time: one business day after
        Saturday 10:00 is Monday 10:00, or Tuesday 10:00 when Monday is a holiday.
        """
        if start.tzinfo is None:
            raise ValueError("start must be timezone-aware")
        if not duration.is_business:
            return start + duration.fixed()
        zone = ZoneInfo(self.timezone)
        wall = start.astimezone(zone).replace(tzinfo=None)
        remaining = duration.amount
        while remaining > 0:
            wall += timedelta(days=1)
            if self.is_business_day(wall.date()):
                remaining -= 1
        return wall.replace(tzinfo=zone).astimezone(start.tzinfo)


def add(
    start: datetime,
    duration: Duration,
    *,
    timezone: str = "UTC",
    business_days: Iterable[int] = WEEKDAYS,
    holidays: Iterable[date] = (),
) -> datetime:
    """`BusinessCalendar(timezone, business_days, holidays).add(start, duration)`."""
    return BusinessCalendar(timezone, frozenset(business_days), frozenset(holidays)).add(start, duration)


def compressed(start: datetime, due: datetime, time_scale: float) -> datetime:
    """Simulations only: `due` brought nearer to `start` by `time_scale` (1.0: real time), so that
    reminders, touches and follow-ons of weeks happen in minutes."""
    return due if time_scale == 1.0 else start + (due - start) * time_scale
