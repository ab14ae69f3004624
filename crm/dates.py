"""Instants as CRMs export them: ISO 8601 with or without a zone ("Z", "+01:00", "+0100"),
"2026-01-31 14:05[:09]" and a bare date. A time without a zone is read in the import's zone.

Day-first and month-first forms ("01/02/2026") are refused rather than guessed: a wrong guess
would move a deal's history by months without a word.
"""

from __future__ import annotations

import re
from datetime import date, datetime, time
from zoneinfo import ZoneInfo

_OFFSET = re.compile(r"([+-])(\d{2})(\d{2})$")  # +0100: Salesforce's form, read as +01:00


class BadInstant(ValueError):
    pass


def parse_instant(text: str, zone: ZoneInfo) -> datetime:
    raw = text.strip()
    if not raw:
        raise BadInstant("empty date")
    if len(raw) > 10 and raw[10] in "T ":  # ISO 8601 as Python reads it: the common case, first
        try:
            value = datetime.fromisoformat(raw)
        except ValueError:
            pass
        else:
            return value if value.tzinfo else value.replace(tzinfo=zone)
    candidate = _OFFSET.sub(r"\1\2:\3", raw.replace(" ", "T", 1) if len(raw) > 10 else raw)
    try:
        if len(candidate) == 10:
            value = datetime.combine(date.fromisoformat(candidate), time())
        else:
            value = datetime.fromisoformat(candidate.replace("Z", "+00:00"))
    except ValueError:
        raise BadInstant(
            f"{raw!r} is not a date or time this import reads: write ISO 8601, e.g. 2026-01-31 or "
            "2026-01-31 14:05 or 2026-01-31T14:05:00Z"
        ) from None
    return value if value.tzinfo else value.replace(tzinfo=zone)


def parse_amount(text: str) -> float | None:
    """An amount as exported: "12500", "12,500.00", "12500.5"; empty is none. A thousands comma is
    accepted only in groups of three, so "12,5" (a decimal comma) is refused, not misread."""
    raw = text.strip().replace(" ", "").replace("\u00a0", "")
    if not raw:
        return None
    if "," in raw and not re.fullmatch(r"-?\d{1,3}(,\d{3})+(\.\d+)?", raw):
        raise ValueError(f"{text.strip()!r} is not an amount: write 12500 or 12,500.00")
    try:
        value = float(raw.replace(",", ""))
    except ValueError:
        raise ValueError(f"{text.strip()!r} is not an amount (a number such as 12500.00)") from None
    if value != value or value in (float("inf"), float("-inf")) or value < 0:
        raise ValueError(f"{text.strip()!r} is not an amount: it must be a number, 0 or more")
    return value
