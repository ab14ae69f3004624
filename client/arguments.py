"""Reading command-line values: one reading of each kind, shared by every command.

`UsageError` means the command line itself is wrong (exit 2); a value that reads but names
nothing (an unknown deal, say) is a `DealflowError` raised further on.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from client.api import DealflowError


class UsageError(Exception):
    pass


def pairs(items: Sequence[str] | None, what: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"{what} {item!r} is not KEY=VALUE")
        if key.strip() in out:
            raise UsageError(f"{what} {key.strip()!r} given twice")
        out[key.strip()] = value.strip()
    return out


def process_ref(ref: str, flag: str = "--process") -> tuple[str, str | None]:
    """`NAME` or `NAME@VERSION`."""
    name, _, version = ref.partition("@")
    if not name:
        raise UsageError(f"{flag} {ref!r}: expected NAME or NAME@VERSION")
    return name, version or None


def instant(text: str, flag: str) -> datetime:
    """An ISO 8601 date or time; one without a zone is read in the local zone."""
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise DealflowError(
            f"{flag} {text!r}: expected a date or time in ISO 8601, e.g. 2026-03-01 or 2026-03-01T12:00:00+01:00",
            code="usage",
        ) from None
    return value if value.tzinfo else value.astimezone()


def optional_instant(text: str | None, flag: str) -> datetime | None:
    return None if text is None else instant(text, flag)
