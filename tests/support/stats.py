"""The statistics tests' independent computations, shared by the tests of the figures and of their
reference checks."""

from __future__ import annotations

import math


def fisher_by_summing(a: int, b: int, c: int, d: int) -> float:
    """Fisher's two-sided p the long way: every table with the same margins no more likely than the
    observed one, summed (in log space, with the same relative tolerance SciPy allows for ties)."""
    row1, row2, col1 = a + b, c + d, a + c
    n = row1 + row2

    def log_comb(m: int, k: int) -> float:
        return math.lgamma(m + 1) - math.lgamma(k + 1) - math.lgamma(m - k + 1)

    def log_p(x: int) -> float:
        return log_comb(row1, x) + log_comb(row2, col1 - x) - log_comb(n, col1)

    observed = log_p(a)
    tables = range(max(0, col1 - row2), min(col1, row1) + 1)
    return min(1.0, math.fsum(math.exp(log_p(x)) for x in tables if log_p(x) <= observed + 1e-7))
