"""The statistics behind version comparisons, in plain Python (no SciPy needed for these).

- Conversion: Fisher's exact test (two-sided, summing tables no more likely than the observed)
  and Wilson score intervals for each proportion.
- Durations: the Mann-Whitney U test with the normal approximation (tie-corrected), which needs
  no assumption about the shape of sales-cycle times.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass


def wilson(successes: int, n: int, z: float = 1.96) -> tuple[float, float] | None:
    """The 95% Wilson score interval of a proportion."""
    if n == 0:
        return None
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def _log_comb(n: int, k: int) -> float:
    return math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)


def fisher_exact(a: int, b: int, c: int, d: int) -> float:
    """Two-sided p-value for the 2x2 table [[a, b], [c, d]] (rows: versions; columns: yes, no)."""
    row1, row2, col1 = a + b, c + d, a + c
    n = row1 + row2
    if n == 0 or row1 == 0 or row2 == 0:
        return 1.0

    def log_p(x: int) -> float:
        return _log_comb(row1, x) + _log_comb(row2, col1 - x) - _log_comb(n, col1)

    observed = log_p(a)
    low, high = max(0, col1 - row2), min(col1, row1)
    total = sum(math.exp(log_p(x)) for x in range(low, high + 1) if log_p(x) <= observed + 1e-7)
    return min(1.0, total)


@dataclass(frozen=True)
class MannWhitney:
    u: float
    z: float
    p: float


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
