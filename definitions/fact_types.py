"""The fact types an exit criterion may declare, each declared once: how a rep's answer is read,
which form control asks for it, how the insights compare its values, and what the demo answers.

Every layer that treats a fact by its type asks here (the definition's validation, the decision
that reads a rep's answer, the deal page, the by-fact insight, the demo), so a new type is one
entry in `KINDS`, and a type with no entry fails at once with `UnknownFactType` naming it rather
than falling through a chain of cases. Pure: no I/O, importable by `definitions/` and `domain/`
(the workflows read a rep's answer through `coerce`).
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum
from typing import Literal, Protocol

from definitions.currencies import CURRENCIES

FactValue = bool | int | float | str
Choices = tuple[tuple[str, str], ...]  # (value, label) pairs

TRUE = frozenset({"true", "yes", "y", "1", "ja", "on"})
FALSE = frozenset({"false", "no", "n", "0", "nei", "nee", "off"})


class FactSpec(Protocol):
    """What an entry reads of an exit criterion (`definitions.model.FactSpec`, which asks here)."""

    @property
    def fact(self) -> str: ...

    @property
    def options(self) -> list[str]: ...


class UnknownFactType(LookupError):
    """A fact type no entry of the registry declares. Not a ValueError: a bad answer is the rep's
    to fix, a type with no entry is the code's (a definition naming one is refused at its line)."""

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"unknown fact type {name!r}: the fact types are {', '.join(KINDS)}")


class Analysis(StrEnum):
    """How the by-fact insight compares a fact's values."""

    categorical = "categorical"  # value by value
    numeric = "numeric"  # in buckets at the quantiles of the values
    none = "none"  # not compared: free text, dates


@dataclass(frozen=True)
class Widget:
    """The form control that asks for a fact on the deal page."""

    control: Literal["input", "select"] = "input"
    input_type: str = "text"  # an input's `type`
    hint: str = ""  # shown after the question
    attrs: tuple[tuple[str, str], ...] = ()  # an input's other attributes (step, maxlength, ...)
    choices: Callable[[FactSpec], Choices] | None = None  # a select's options
    suggestions: Callable[[FactSpec], Choices] | None = None  # an input's datalist


@dataclass(frozen=True)
class Control:
    """A widget for one fact, with what the deal holds (or the rep typed) shown in it."""

    control: Literal["input", "select"]
    input_type: str
    hint: str
    attrs: tuple[tuple[str, str], ...]
    choices: Choices
    suggestions: Choices
    shown: str


def _shown(value: FactValue) -> str:
    return str(value)


@dataclass(frozen=True)
class FactKind:
    """One fact type. `coerce` raises ValueError naming what it expects; `declared` lists a
    categorical type's values in the order the insight shows them (others recorded follow,
    sorted); `demo` answers as a rep would type it; `options` says whether the type takes the
    fact's `options` (required then, refused otherwise)."""

    name: str
    coerce: Callable[[FactSpec, FactValue], FactValue]
    widget: Widget
    analysis: Analysis
    demo: Callable[[FactSpec, random.Random], str]
    options: bool = False
    declared: Callable[[FactSpec], list[FactValue]] = field(default=lambda spec: [])
    shown: Callable[[FactValue], str] = _shown

    def control(self, spec: FactSpec, value: FactValue | None) -> Control:
        w = self.widget
        return Control(
            control=w.control,
            input_type=w.input_type,
            hint=w.hint,
            attrs=w.attrs,
            choices=w.choices(spec) if w.choices else (),
            suggestions=w.suggestions(spec) if w.suggestions else (),
            shown="" if value is None else self.shown(value),
        )


def _text(spec: FactSpec, value: FactValue) -> FactValue:
    if not isinstance(value, str) or not value.strip():
        raise ValueError("expected non-empty text")
    return value.strip()


def _boolean(spec: FactSpec, value: FactValue) -> FactValue:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in TRUE | FALSE:
        return value.strip().lower() in TRUE
    raise ValueError("expected yes or no")


def _integer(spec: FactSpec, value: FactValue) -> FactValue:
    if isinstance(value, bool):
        raise ValueError("expected a whole number")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and re.fullmatch(r"\s*[-+]?\d+\s*", value):
        return int(value)
    raise ValueError("expected a whole number")


def _number(spec: FactSpec, value: FactValue) -> FactValue:
    if isinstance(value, bool):
        raise ValueError("expected a number")
    if isinstance(value, (int, float)):
        return float(value)
    try:
        return float(str(value).replace("_", ""))
    except ValueError:
        raise ValueError("expected a number") from None


def _date(spec: FactSpec, value: FactValue) -> FactValue:
    try:
        return date.fromisoformat(str(value).strip()).isoformat()
    except ValueError:
        raise ValueError("expected a date as YYYY-MM-DD") from None


def _choice(spec: FactSpec, value: FactValue) -> FactValue:
    if not isinstance(value, str) or value not in spec.options:
        raise ValueError(f"expected one of {spec.options}")
    return value


def _currency(spec: FactSpec, value: FactValue) -> FactValue:
    """Read in upper case, as country codes are: `nok` is NOK."""
    code = value.strip().upper() if isinstance(value, str) else ""
    if not re.fullmatch(r"[A-Z]{3}", code):
        raise ValueError("expected an ISO 4217 currency code of three letters, such as EUR, NOK or USD")
    if code not in CURRENCIES:
        raise ValueError(f"{code} is not an ISO 4217 currency code (such as EUR, NOK or USD)")
    return code


def _yes_no(value: FactValue) -> str:
    return ("yes" if value else "no") if isinstance(value, bool) else str(value)


def _options(spec: FactSpec) -> Choices:
    return tuple((o, o) for o in spec.options)


def _currencies(spec: FactSpec) -> Choices:
    return tuple((code, f"{code} ({name})") for code, name in CURRENCIES.items())


def _demo_text(spec: FactSpec, rng: random.Random) -> str:
    return rng.choice(["CFO", "head of sales", "procurement", "CTO"]) + f" ({spec.fact.replace('_', ' ')})"


def _demo_date(spec: FactSpec, rng: random.Random) -> str:
    return f"2026-{rng.randrange(1, 13):02d}-{rng.randrange(1, 29):02d}"


_NUMBER_ATTRS = (("step", "any"),)
_CURRENCY_ATTRS = (("maxlength", "3"), ("autocapitalize", "characters"), ("spellcheck", "false"))

KINDS: dict[str, FactKind] = {
    k.name: k
    for k in [
        FactKind("text", _text, Widget(), Analysis.none, _demo_text),
        FactKind(
            "number",
            _number,
            Widget(input_type="number", attrs=_NUMBER_ATTRS),
            Analysis.numeric,
            lambda spec, rng: str(rng.randrange(5, 500) * 100),
        ),
        FactKind(
            "integer",
            _integer,
            Widget(input_type="number", hint="whole number", attrs=(("step", "1"),)),
            Analysis.numeric,
            lambda spec, rng: str(rng.randrange(0, 5)),
        ),
        FactKind(
            "boolean",
            _boolean,
            Widget(control="select", choices=lambda spec: (("yes", "yes"), ("no", "no"))),
            Analysis.categorical,
            lambda spec, rng: rng.choice(["yes", "no"]),
            declared=lambda spec: [True, False],
            shown=_yes_no,
        ),
        FactKind("date", _date, Widget(input_type="date"), Analysis.none, _demo_date),
        FactKind(
            "choice",
            _choice,
            Widget(control="select", choices=_options),
            Analysis.categorical,
            lambda spec, rng: rng.choice(spec.options),
            options=True,
            declared=lambda spec: list(spec.options),
        ),
        FactKind(
            "currency",
            _currency,
            Widget(hint="ISO 4217 code, such as EUR", attrs=_CURRENCY_ATTRS, suggestions=_currencies),
            Analysis.categorical,
            lambda spec, rng: rng.choice(["EUR", "NOK", "SEK", "DKK", "USD", "GBP"]),
        ),
    ]
}


def kind(name: str) -> FactKind:
    """The registry's entry for `name`, or UnknownFactType naming it and the known types."""
    found = KINDS.get(name)
    if found is None:
        raise UnknownFactType(name)
    return found


def compared(analysis: Analysis) -> list[str]:
    """The types whose values the insights compare this way, in the registry's order."""
    return [k.name for k in KINDS.values() if k.analysis is analysis]
