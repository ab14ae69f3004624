"""Reading command-line values: one reading of each kind, shared by every command.

A value that does not read (`--fact` without `=`, `--since` that is not a time, `--value` that
is not a number) is refused by argparse while it parses, before anything connects: the command
prints its usage and the problem, and exits 2. So is a rule between options (`UsageError`,
raised by a command's `check` before anything connects). A value that reads but names nothing
(an unknown deal, say) or that the deal refuses is a `DealflowError` raised further on (exit 1).
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

PORT_MAX = 65535


class UsageError(Exception):
    """The command line is wrong as a whole (options that conflict, one that needs another)."""


def key_value(text: str) -> tuple[str, str]:
    """`KEY=VALUE`, both sides stripped; the value may be empty, the key may not."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"{text!r} is not KEY=VALUE")
    return key.strip(), value.strip()


class KeyValues(argparse.Action):
    """A repeatable `KEY=VALUE` option gathered into a dict; a key given twice is refused."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: str | Sequence[Any] | None,
        option_string: str | None = None,
    ) -> None:
        key, value = values if isinstance(values, tuple) else key_value(str(values))
        found: dict[str, str] = dict(getattr(namespace, self.dest, None) or {})
        if key in found:
            raise argparse.ArgumentError(self, f"{key!r} given twice")
        found[key] = value
        setattr(namespace, self.dest, found)


def add_key_values(p: argparse.ArgumentParser, flag: str, *, metavar: str = "K=V", help: str | None = None) -> None:
    """`flag K=V`, repeatable; the namespace gets a dict (empty when the option is not given)."""
    p.add_argument(flag, action=KeyValues, type=key_value, default={}, metavar=metavar, help=help)


def process_ref(ref: str) -> tuple[str, str | None]:
    """`NAME` or `NAME@VERSION`."""
    name, _, version = ref.partition("@")
    if not name:
        raise argparse.ArgumentTypeError(f"{ref!r}: expected NAME or NAME@VERSION")
    return name, version or None


def instant(text: str) -> datetime:
    """An ISO 8601 date or time; one without a zone is read in the local zone."""
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r}: expected a date or time in ISO 8601, e.g. 2026-03-01 or 2026-03-01T12:00:00+01:00"
        ) from None
    return value if value.tzinfo else value.astimezone()


def expiry(text: str) -> datetime:
    """When a token stops working: a time (ISO 8601) or a span from now, e.g. 30d or 12h."""
    unit = {"d": 86400, "h": 3600, "m": 60}.get(text[-1:])
    if unit is not None and text[:-1].isdigit() and int(text[:-1]) > 0:
        return datetime.now(UTC) + timedelta(seconds=int(text[:-1]) * unit)
    try:
        value = instant(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(
            f"{text!r}: expected a span such as 30d, 12h or 90m, or a date or time such as 2027-01-31"
        ) from None
    if value <= datetime.now(UTC):
        raise argparse.ArgumentTypeError(f"{text!r} is in the past: a token must expire later than now")
    return value


def number(text: str) -> float:
    """A finite number (`1e3`, `25000`, `0.5`); not `nan` or `inf`."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    return value


def time_scale(text: str) -> float:
    value = number(text)
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"{text}: must be greater than 0 and at most 1")
    return value


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text}: must be at least 1")
    return value


def port(text: str) -> int:
    value = positive_int(text)
    if value > PORT_MAX:
        raise argparse.ArgumentTypeError(f"{text}: a port is at most {PORT_MAX}")
    return value
