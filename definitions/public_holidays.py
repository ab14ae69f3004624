"""A country's public holidays, looked up when a definition is deployed and at no other time.

The `holidays` package's data changes from release to release (a new holiday, a corrected
date), so a running deal must never consult it: pinning writes the dates of a window of years
into the definition, the content hash covers them, and the workflows only read those dates.
This is the one module that imports `holidays`; `definitions.loader` imports it inside the
functions that need it, because the workflows import the loader (for `PinnedDefinition`).
"""

from __future__ import annotations

import zoneinfo
from collections.abc import Iterator
from datetime import date
from functools import cache
from pathlib import Path

import holidays

from definitions.model import ProcessDefinition

Problem = tuple[tuple[str | int, ...], str]


def problems(d: ProcessDefinition, today: date | None = None) -> Iterator[Problem]:
    """The country and subdivision must be ones the installed package knows, and every holiday
    `remove` names one the country has in the pinned window."""
    spec = d.holidays
    if spec is None:
        return
    if spec.country is None:
        if spec.subdivision is not None:
            yield ("holidays", "subdivision"), "a subdivision needs a country"
        if spec.remove:
            yield ("holidays", "remove"), "remove names holidays of a country: it needs a country"
        return
    supported = holidays.list_supported_countries(include_aliases=False)
    if spec.country not in supported:
        yield (
            ("holidays", "country"),
            f"unknown country {spec.country!r}: use an ISO 3166-1 alpha-2 code the holidays package knows, "
            "such as 'NL', 'NO' or 'DE'",
        )
        return
    subdivisions = supported[spec.country]
    if spec.subdivision is not None and spec.subdivision not in subdivisions:
        known = ", ".join(subdivisions) if subdivisions else "none: leave subdivision out"
        yield (
            ("holidays", "subdivision"),
            f"unknown subdivision {spec.subdivision!r} of {spec.country} (known: {known})",
        )
        return
    today = today or date.today()
    names = {n.casefold(): n for calendar in _calendars(d, today) for day in calendar.values() for n in _split(day)}
    window = _window(d, today)
    for i, name in enumerate(spec.remove):
        if name.strip().casefold() not in names:
            yield (
                ("holidays", "remove", i),
                f"{spec.country} has no holiday named {name!r} in {window.start}-{window.stop - 1} "
                f"(known: {', '.join(sorted(set(names.values())))})",
            )


def warnings(d: ProcessDefinition) -> Iterator[Problem]:
    """A country code that is valid but not a country of the process's time zone: `NE` (Niger)
    written for `NL` in a process on Europe/Amsterdam deploys, and skips Niger's holidays. The
    process has no language of its own, so the time zone is what the country is held against;
    a zone of no country (UTC) or one the time zone tables do not list is not judged."""
    spec = d.holidays
    if spec is None or spec.country is None or spec.country not in holidays.list_supported_countries():
        return
    zones, names = _zone_tables()
    countries = zones.get(d.timezone)
    if not countries or spec.country in countries:
        return
    theirs = ", ".join(f"{c} ({names.get(c, c)})" for c in sorted(countries))
    yield (
        ("holidays", "country"),
        f"country {spec.country!r} ({names.get(spec.country, 'unknown')}) is not a country of the process's "
        f"time zone {d.timezone} ({theirs}): did you mean {' or '.join(repr(c) for c in sorted(countries))}?",
    )


def expand(d: ProcessDefinition, today: date) -> ProcessDefinition:
    """`d` with its country's public holidays from `first_year` (else `today`'s year) through
    `years` years after it, less those `remove` names, added to its dates; a definition already
    expanded comes back equal. A date written by hand stays, even on a removed holiday: it is a
    day off of the company's own."""
    spec = d.holidays
    if spec is None or spec.country is None:
        return d
    wanted = {n.strip().casefold() for n in spec.remove}
    calendars = _calendars(d, today)
    removed = {day for c in calendars for day, names in c.items() if wanted & {n.casefold() for n in _split(names)}}
    dates = sorted(set(spec.dates) | (set(calendars[0]) - removed))
    first = _window(d, today).start
    return d.model_copy(update={"holidays": spec.model_copy(update={"first_year": first, "dates": dates})})


def _window(d: ProcessDefinition, today: date) -> range:
    assert d.holidays is not None
    first = d.holidays.first_year if d.holidays.first_year is not None else today.year
    return range(first, first + d.holidays.years + 1)


def _calendars(d: ProcessDefinition, today: date) -> list[holidays.HolidayBase]:
    """The country's holidays in the window; when `remove` names any, also in the country's own
    language and in English (the names the package gives without a language depend on its
    release and the locale): `remove` may name a holiday in any of them. The dates are the same
    in all."""
    spec = d.holidays
    assert spec is not None and spec.country is not None
    years = _window(d, today)
    own = holidays.country_holidays(spec.country, subdiv=spec.subdivision, years=years)
    if not spec.remove:
        return [own]  # only the dates matter
    languages = [getattr(own, "default_language", None), "en_US"]
    known = getattr(own, "supported_languages", ())
    return [own] + [
        holidays.country_holidays(spec.country, subdiv=spec.subdivision, years=years, language=language)
        for language in dict.fromkeys(languages)
        if language and language in known
    ]


def _split(names: str) -> list[str]:
    """The package joins the names of holidays on one date with '; '."""
    return [n.strip() for n in names.split(";") if n.strip()]


@cache
def _zone_tables() -> tuple[dict[str, set[str]], dict[str, str]]:
    """Time zone -> the countries that use it (zone.tab and zone1970.tab of the time zone data
    zoneinfo reads), and country code -> name (iso3166.tab); empty when no table is found."""
    zones: dict[str, set[str]] = {}
    names: dict[str, str] = {}
    for base in map(Path, zoneinfo.TZPATH):
        for table in ("zone.tab", "zone1970.tab"):
            path = base / table
            if not path.is_file():
                continue
            for line in path.read_text(encoding="utf-8").splitlines():
                if line.startswith("#") or not line.strip():
                    continue
                codes, _, zone = line.split("\t")[:3]
                zones.setdefault(zone, set()).update(codes.split(","))
        iso = base / "iso3166.tab"
        if iso.is_file() and not names:
            for line in iso.read_text(encoding="utf-8").splitlines():
                if not line.startswith("#") and "\t" in line:
                    code, name = line.split("\t", 1)
                    names[code] = name.strip()
        if zones:
            break
    return zones, names
