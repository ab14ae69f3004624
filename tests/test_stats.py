"""The statistics against values computed independently (SciPy's, recorded here)."""

from __future__ import annotations

import pytest

from store.stats import fisher_exact, mann_whitney, wilson

pytestmark = pytest.mark.unit


def test_fisher_exact_matches_known_values() -> None:
    # scipy.stats.fisher_exact([[8, 2], [1, 5]]) -> p = 0.03496503...
    assert fisher_exact(8, 2, 1, 5) == pytest.approx(0.034965, abs=1e-6)
    # the tea-tasting table [[3, 1], [1, 3]] -> p = 0.48571...
    assert fisher_exact(3, 1, 1, 3) == pytest.approx(0.485714, abs=1e-6)
    assert fisher_exact(5, 5, 5, 5) == pytest.approx(1.0)
    assert fisher_exact(0, 0, 3, 4) == 1.0


def test_wilson_interval() -> None:
    low, high = wilson(40, 100) or (0, 0)
    assert low == pytest.approx(0.3094, abs=1e-4) and high == pytest.approx(0.4980, abs=1e-4)
    assert wilson(0, 0) is None


def test_mann_whitney_normal_approximation() -> None:
    # scipy.stats.mannwhitneyu([1,2,3,4,5], [6,7,8,9,10], method="asymptotic", use_continuity=False)
    # -> U = 0, p = 0.0090234...
    result = mann_whitney([1, 2, 3, 4, 5], [6, 7, 8, 9, 10])
    assert result is not None and result.u == 0 and result.p == pytest.approx(0.0090234, abs=1e-6)
    same = mann_whitney([1, 2, 3], [1, 2, 3])
    assert same is not None and same.p == pytest.approx(1.0)
    assert mann_whitney([], [1.0]) is None
