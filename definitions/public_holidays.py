"""A country's public holidays, looked up when a definition is deployed and at no other time.

The `holidays` package's data changes from release to release (a new holiday, a corrected
date), so a running deal must never consult it: pinning writes the dates of a window of years
into the definition, the content hash covers them, and the workflows only read those dates.
This is the one module that imports `holidays`; `definitions.loader` imports it inside the
functions that need it, because the workflows import the loader (for `PinnedDefinition`).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date

import holidays

from definitions.model import ProcessDefinition

Problem = tuple[tuple[str | int, ...], str]


def problems(d: ProcessDefinition) -> Iterator[Problem]:
    """The country and subdivision must be ones the installed package knows."""
    spec = d.holidays
    if spec is None:
        return
    if spec.country is None:
        if spec.subdivision is not None:
            yield ("holidays", "subdivision"), "a subdivision needs a country"
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


def expand(d: ProcessDefinition, today: date) -> ProcessDefinition:
    """`d` with its country's public holidays from `first_year` (else `today`'s year) through
    `years` years after it added to its dates; a definition already expanded comes back equal."""
    spec = d.holidays
    if spec is None or spec.country is None:
        return d
    first = spec.first_year if spec.first_year is not None else today.year
    found = holidays.country_holidays(spec.country, subdiv=spec.subdivision, years=range(first, first + spec.years + 1))
    dates = sorted(set(spec.dates) | set(found))
    return d.model_copy(update={"holidays": spec.model_copy(update={"first_year": first, "dates": dates})})
