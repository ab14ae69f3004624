"""Durations as operations teams write them ("5 business days", "48 hours").

Definitions are written by people, so a duration is a short phrase rather than an ISO 8601
string. It is parsed once, at validation, into a normalised `Duration` so that two spellings of
the same duration give the same definition version.
"""

from __future__ import annotations

import re
from datetime import timedelta
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, model_validator


class DurationUnit(StrEnum):
    minutes = "minutes"
    hours = "hours"
    days = "days"
    business_days = "business_days"
    weeks = "weeks"


_UNIT_WORDS: dict[str, DurationUnit] = {
    "m": DurationUnit.minutes,
    "min": DurationUnit.minutes,
    "mins": DurationUnit.minutes,
    "minute": DurationUnit.minutes,
    "minutes": DurationUnit.minutes,
    "h": DurationUnit.hours,
    "hr": DurationUnit.hours,
    "hrs": DurationUnit.hours,
    "hour": DurationUnit.hours,
    "hours": DurationUnit.hours,
    "d": DurationUnit.days,
    "day": DurationUnit.days,
    "days": DurationUnit.days,
    "bd": DurationUnit.business_days,
    "business day": DurationUnit.business_days,
    "business days": DurationUnit.business_days,
    "working day": DurationUnit.business_days,
    "working days": DurationUnit.business_days,
    "w": DurationUnit.weeks,
    "week": DurationUnit.weeks,
    "weeks": DurationUnit.weeks,
}

_PHRASE = re.compile(r"^\s*(?P<amount>[-+]?\d+)\s*(?P<unit>[a-z][a-z ]*?)\s*$", re.IGNORECASE)

_FIXED: dict[DurationUnit, timedelta] = {
    DurationUnit.minutes: timedelta(minutes=1),
    DurationUnit.hours: timedelta(hours=1),
    DurationUnit.days: timedelta(days=1),
    DurationUnit.weeks: timedelta(weeks=1),
}


class Duration(BaseModel):
    """A non-negative amount of a calendar or business-day unit."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    amount: int
    unit: DurationUnit

    @model_validator(mode="before")
    @classmethod
    def _parse_phrase(cls, value: Any) -> Any:
        if isinstance(value, int) and not isinstance(value, bool):
            raise ValueError(f"a bare number ({value}) is ambiguous: write a unit, e.g. '{value} hours'")
        if isinstance(value, str):
            match = _PHRASE.match(value)
            if not match:
                raise ValueError(
                    f"cannot read duration {value!r}: write an amount and a unit, "
                    "e.g. '5 business days', '48 hours', '30 minutes', '2 weeks'"
                )
            unit_word = " ".join(match["unit"].lower().split())
            unit = _UNIT_WORDS.get(unit_word)
            if unit is None:
                raise ValueError(
                    f"unknown duration unit {match['unit']!r} in {value!r}; "
                    f"use one of: minutes, hours, days, business days, weeks"
                )
            return {"amount": int(match["amount"]), "unit": unit}
        return value

    @model_validator(mode="after")
    def _not_negative(self) -> Duration:
        if self.amount < 0:
            raise ValueError(f"negative duration ({self.amount} {self.unit.value}) is not allowed")
        return self

    @property
    def is_business(self) -> bool:
        return self.unit is DurationUnit.business_days

    def fixed(self) -> timedelta:
        """The calendar length; business days need a calendar, see `domain.calendar`."""
        if self.is_business:
            raise ValueError("business days have no fixed length; use a business calendar")
        return _FIXED[self.unit] * self.amount

    def __str__(self) -> str:
        return f"{self.amount} {self.unit.value.replace('_', ' ')}"
