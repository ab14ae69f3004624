"""The tests and intervals behind version comparisons, verdicts and the insights.

Which are SciPy's outright and which are written here (and checked against SciPy and statsmodels
in tests/unit/test_statistics_reference.py) is decided per statistic in docs/metrics.md#statistics:

- Fisher's exact test (two-sided, summing tables no more likely than the observed): SciPy's,
  whose hypergeometric tails cost the same on a table of two million deals as on one of twenty
  (a sum in Python costs a term per possible table: seconds at that size, where
  `store.compare` tests whole populations).
- The chi-square distribution's tail: SciPy's (`scipy.special.chdtrc`), the regularised
  incomplete gamma function, whose numerics are not worth owning.
- Pearson's chi-square statistic, the Mann-Whitney U test (tie-corrected normal approximation,
  which needs no assumption about the shape of sales-cycle times), Wilson score intervals and
  Holm's adjustment: written here, a few lines each, with behaviour of their own at the edges
  (empty rows left out, no variance means p = 1) that the libraries answer with NaN or errors.

SciPy is imported inside the functions that need it: its modules take most of a second to import,
which a CLI command that tests nothing should not pay.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

Z95 = 1.959963984540054  # the standard normal's 97.5% quantile: two-sided 95%


def wilson(successes: int, n: int, z: float = Z95) -> tuple[float, float] | None:
    """The Wilson score interval of a proportion (95% by default); None without observations."""
    if n == 0:
        return None
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    # at none (or all) the bound is 0 (or 1) exactly; rounding would leave the observed share out
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == n else min(1.0, centre + half)
    return low, high


def fisher_exact(a: int, b: int, c: int, d: int) -> float:
    """Two-sided p-value for the 2x2 table [[a, b], [c, d]] (rows: versions; columns: yes, no)."""
    if a + b == 0 or c + d == 0:
        return 1.0
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
    """Two-sided Mann-Whitney U with the tie-corrected normal approximation and no continuity
    correction; when every value is the same there is nothing to rank, and p is 1."""
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


def chi_square_sf(statistic: float, df: int) -> float:
    """P(X >= statistic) for X chi-square distributed with `df` degrees of freedom."""
    if df < 1:
        raise ValueError("a chi-square distribution has at least one degree of freedom")
    if statistic <= 0:
        return 1.0
    from scipy.special import chdtrc

    return float(chdtrc(df, statistic))


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


def holm(ps: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values, in the order given: the i-th smallest p times the
    number of hypotheses not yet rejected before it (m - i + 1), never below an earlier one's,
    at most 1. A hypothesis is rejected at family-wise level alpha when its adjusted p is below it."""
    order = sorted(range(len(ps)), key=lambda i: ps[i])
    adjusted = [1.0] * len(ps)
    floor = 0.0
    for rank, i in enumerate(order):
        floor = max(floor, min(1.0, (len(ps) - rank) * ps[i]))
        adjusted[i] = floor
    return adjusted
