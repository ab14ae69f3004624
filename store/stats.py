"""The statistics behind version comparisons and the insights.

- Conversion: Fisher's exact test (two-sided, summing tables no more likely than the observed),
  by SciPy, whose hypergeometric tails cost the same on a table of two million deals as on one
  of twenty (a sum in Python costs a term per possible table: seconds at that size, where
  `store.compare` tests whole populations); and Wilson score intervals for each proportion.
- Durations: the Mann-Whitney U test with the normal approximation (tie-corrected), which needs
  no assumption about the shape of sales-cycle times.
- Tables of counts (rep against the rest of the team, one value of a fact against the others):
  Pearson's chi-square, whose p-value needs the chi-square distribution's tail (the regularised
  incomplete gamma function); for a 2x2 table with an expected count below 5, where the
  approximation fails, Fisher's exact test instead (`two_by_two`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist


def wilson(successes: int, n: int, z: float = 1.96) -> tuple[float, float] | None:
    """The 95% Wilson score interval of a proportion."""
    if n == 0:
        return None
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def fisher_exact(a: int, b: int, c: int, d: int) -> float:
    """Two-sided p-value for the 2x2 table [[a, b], [c, d]] (rows: versions; columns: yes, no)."""
    if a + b == 0 or c + d == 0:
        return 1.0
    # imported here: SciPy's statistics take most of a second to import, which a CLI command that
    # tests nothing should not pay
    from scipy.stats import fisher_exact as scipy_fisher

    return min(1.0, float(scipy_fisher([[a, b], [c, d]], alternative="two-sided").pvalue))


@dataclass(frozen=True)
class MannWhitney:
    u: float  # of the first group: how many (x, y) pairs have x > y, ties counting half
    z: float  # positive when the first group's values tend to be larger
    p: float  # two-sided

    @property
    def p_greater(self) -> float:
        """One-sided: that the first group's values tend to be larger (a small p says they do)."""
        return 0.5 * math.erfc(self.z / math.sqrt(2))


def mann_whitney(xs: Sequence[float], ys: Sequence[float]) -> MannWhitney | None:
    """Two-sided Mann-Whitney U with the tie-corrected normal approximation."""
    n1, n2 = len(xs), len(ys)
    if n1 == 0 or n2 == 0:
        return None
    pooled = sorted([(v, 0) for v in xs] + [(v, 1) for v in ys])
    ranks = [0.0] * len(pooled)
    ties = 0.0
    i = 0
    while i < len(pooled):
        j = i
        while j + 1 < len(pooled) and pooled[j + 1][0] == pooled[i][0]:
            j += 1
        rank = (i + j) / 2 + 1
        for k in range(i, j + 1):
            ranks[k] = rank
        t = j - i + 1
        ties += t**3 - t
        i = j + 1
    r1 = sum(r for r, (_, group) in zip(ranks, pooled, strict=True) if group == 0)
    u1 = r1 - n1 * (n1 + 1) / 2
    n = n1 + n2
    mean = n1 * n2 / 2
    variance = n1 * n2 / 12 * ((n + 1) - ties / (n * (n - 1))) if n > 1 else 0.0
    if variance <= 0:
        return MannWhitney(u1, 0.0, 1.0)
    z = (u1 - mean) / math.sqrt(variance)
    p = math.erfc(abs(z) / math.sqrt(2))
    return MannWhitney(u1, z, p)


def _gamma_q(a: float, x: float) -> float:
    """The regularised upper incomplete gamma function Q(a, x): a series below a + 1, a continued
    fraction (modified Lentz) above it, each converging fast where it is used."""
    if x <= 0:
        return 1.0
    log_front = -x + a * math.log(x) - math.lgamma(a)
    if x < a + 1:
        term = total = 1.0 / a
        denominator = a
        while abs(term) > abs(total) * 1e-15:
            denominator += 1
            term *= x / denominator
            total += term
        return max(0.0, 1.0 - total * math.exp(log_front))
    tiny = 1e-300
    b = x + 1 - a
    c = 1 / tiny
    d = 1 / b
    h = d
    for i in range(1, 10_000):
        an = -i * (i - a)
        b += 2
        d = an * d + b
        d = tiny if abs(d) < tiny else d
        c = b + an / c
        c = tiny if abs(c) < tiny else c
        d = 1 / d
        step = d * c
        h *= step
        if abs(step - 1) < 1e-15:
            break
    return min(1.0, math.exp(log_front) * h)


def chi_square_sf(statistic: float, df: int) -> float:
    """P(X >= statistic) for X chi-square distributed with `df` degrees of freedom."""
    if df < 1:
        raise ValueError("a chi-square distribution has at least one degree of freedom")
    return _gamma_q(df / 2, statistic / 2)


@dataclass(frozen=True)
class ChiSquare:
    statistic: float
    df: int
    p: float
    min_expected: float


def chi_square(table: Sequence[Sequence[int]]) -> ChiSquare | None:
    """Pearson's test of independence for a table of counts (no continuity correction); rows or
    columns that are all zero are left out. None when fewer than two rows and two columns remain."""
    rows = [list(r) for r in table if sum(r)]
    if len(rows) < 2:
        return None
    keep = [j for j in range(len(rows[0])) if sum(r[j] for r in rows)]
    if len(keep) < 2:
        return None
    rows = [[r[j] for j in keep] for r in rows]
    n = sum(map(sum, rows))
    row_sums = [sum(r) for r in rows]
    col_sums = [sum(r[j] for r in rows) for j in range(len(keep))]
    statistic = 0.0
    smallest = math.inf
    for i, r in enumerate(rows):
        for j, observed in enumerate(r):
            expected = row_sums[i] * col_sums[j] / n
            smallest = min(smallest, expected)
            statistic += (observed - expected) ** 2 / expected
    df = (len(rows) - 1) * (len(keep) - 1)
    return ChiSquare(statistic, df, chi_square_sf(statistic, df), smallest)


@dataclass(frozen=True)
class TwoByTwo:
    test: str  # "fisher" or "chi-square"
    p: float


def two_by_two(a: int, b: int, c: int, d: int) -> TwoByTwo:
    """Two-sided p for [[a, b], [c, d]]: Fisher's exact test when an expected count is below 5,
    Pearson's chi-square otherwise (Cochran's rule)."""
    result = chi_square([[a, b], [c, d]])
    if result is None:
        return TwoByTwo("fisher", 1.0)
    if result.min_expected < 5:
        return TwoByTwo("fisher", fisher_exact(a, b, c, d))
    return TwoByTwo("chi-square", result.p)


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
