"""Adding durations to instants the way a sales team counts them.

"5 business days" from Friday 16:00 in Oslo is the following Friday 16:00 Oslo time, whatever
daylight saving did in between; "48 hours" is 48 hours. Pure and deterministic (the time zone
data is read, never the clock), so the deal workflow can use it to place its timers.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from definitions.durations import Duration


def add(
    start: datetime, duration: Duration, *, timezone: str = "UTC", business_days: Sequence[int] = (0, 1, 2, 3, 4)
) -> datetime:
    """`start` plus `duration`; business days keep the local wall-clock time and skip non-working days.

    A start on a non-working day counts from that day's wall-clock time: one business day after
    Saturday 10:00 is Monday 10:00.
    """
    if start.tzinfo is None:
        raise ValueError("start must be timezone-aware")
    if not duration.is_business:
        return start + duration.fixed()
    zone = ZoneInfo(timezone)
    local = start.astimezone(zone)
    wall = local.replace(tzinfo=None)
    remaining = duration.amount
    while remaining > 0:
        wall += timedelta(days=1)
        if wall.weekday() in business_days:
            remaining -= 1
    return wall.replace(tzinfo=zone).astimezone(start.tzinfo)
