"""Business-day arithmetic for reminders and cadences."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from definitions.durations import Duration
from domain.calendar import add

OSLO = "Europe/Oslo"


def d(text: str) -> Duration:
    return Duration.model_validate(text)


def test_plain_units_are_fixed_lengths() -> None:
    start = datetime(2026, 3, 27, 12, 0, tzinfo=UTC)  # DST changes in Europe on 29 March
    assert add(start, d("48 hours"), timezone=OSLO) == datetime(2026, 3, 29, 12, 0, tzinfo=UTC)
    assert add(start, d("30 minutes")) == datetime(2026, 3, 27, 12, 30, tzinfo=UTC)
    assert add(start, d("1 week")) == datetime(2026, 4, 3, 12, 0, tzinfo=UTC)


def test_business_days_skip_the_weekend() -> None:
    friday = datetime(2026, 3, 6, 15, 0, tzinfo=UTC)  # Friday 16:00 in Oslo (UTC+1)
    assert add(friday, d("1 business day"), timezone=OSLO) == datetime(2026, 3, 9, 15, 0, tzinfo=UTC)  # Monday
    assert add(friday, d("5 business days"), timezone=OSLO) == datetime(2026, 3, 13, 15, 0, tzinfo=UTC)


def test_business_days_keep_local_time_across_daylight_saving() -> None:
    friday = datetime(2026, 3, 27, 15, 0, tzinfo=UTC)  # Friday 16:00 Oslo, winter time
    monday = add(friday, d("1 business day"), timezone=OSLO)
    assert monday == datetime(2026, 3, 30, 14, 0, tzinfo=UTC)  # Monday 16:00 Oslo, summer time


def test_weekend_start_and_custom_working_week() -> None:
    saturday = datetime(2026, 3, 7, 10, 0, tzinfo=UTC)
    assert add(saturday, d("1 business day")) == datetime(2026, 3, 9, 10, 0, tzinfo=UTC)
    sunday_to_thursday = (6, 0, 1, 2, 3)
    thursday = datetime(2026, 3, 5, 10, 0, tzinfo=UTC)
    assert add(thursday, d("1 business day"), business_days=sunday_to_thursday) == datetime(
        2026, 3, 8, 10, 0, tzinfo=UTC
    )


def test_zero_is_now_and_naive_times_are_refused() -> None:
    now = datetime(2026, 3, 4, 10, 0, tzinfo=UTC)
    assert add(now, d("0 business days")) == now
    with pytest.raises(ValueError, match="timezone-aware"):
        add(datetime(2026, 3, 4), d("1 day"))
