"""How many deals (or observations) a test would need to tell a difference the size seen: what a
verdict says instead of "the same" when it cannot tell. Normal approximations, 80% power."""

from __future__ import annotations

import math
from statistics import NormalDist


def deals_needed(p1: float, p2: float, n2: int, level: float, power: float = 0.8) -> int | None:
    """How many deals the first group would need for a difference of rates `p1` against `p2` (the
    second group keeping its `n2` deals) to be found at the two-sided `level` with `power`, by the
    normal approximation (each rate's own variance). None when no number of deals would do: the
    rates are equal, or the second group is itself too small for a difference this size."""
    delta = abs(p1 - p2)
    if delta == 0:
        return None
    z = NormalDist().inv_cdf(1 - level / 2) + NormalDist().inv_cdf(power)
    room = (delta / z) ** 2 - p2 * (1 - p2) / n2  # the variance the first group may still add
    if room <= 0:
        return None
    return max(1, math.ceil(p1 * (1 - p1) / room))


def deals_needed_each(p1: float, p2: float, level: float, power: float = 0.8) -> int | None:
    """As `deals_needed`, with both groups growing to the same number of deals."""
    delta = abs(p1 - p2)
    if delta == 0:
        return None
    z = NormalDist().inv_cdf(1 - level / 2) + NormalDist().inv_cdf(power)
    return max(1, math.ceil(z * z * (p1 * (1 - p1) + p2 * (1 - p2)) / delta**2))


def pairs_needed(auc: float, share: float, level: float, power: float = 0.8) -> int | None:
    """How many observations in all the Mann-Whitney test would need to find, one-sided at `level`
    with `power`, a shift where a value of the first group exceeds one of the second with
    probability `auc`, the first group holding `share` of them (Noether's formula)."""
    if auc <= 0.5 or not 0 < share < 1:
        return None
    z = NormalDist().inv_cdf(1 - level) + NormalDist().inv_cdf(power)
    return math.ceil(z * z / (12 * share * (1 - share) * (auc - 0.5) ** 2))
