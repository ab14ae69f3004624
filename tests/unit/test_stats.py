"""The statistics against values computed independently (SciPy's, recorded here, and closed forms)."""

from __future__ import annotations

import math

import pytest

from analytics.significance import chi_square, chi_square_sf, fisher_exact, mann_whitney, two_by_two, wilson
from tests.support.stats import fisher_by_summing


def test_fisher_exact_matches_known_values() -> None:
    # scipy.stats.fisher_exact([[8, 2], [1, 5]]) -> p = 0.03496503...
    assert fisher_exact(8, 2, 1, 5) == pytest.approx(0.034965, abs=1e-6)
    # the tea-tasting table [[3, 1], [1, 3]] -> p = 0.48571...
    assert fisher_exact(3, 1, 1, 3) == pytest.approx(0.485714, abs=1e-6)
    assert fisher_exact(5, 5, 5, 5) == pytest.approx(1.0)
    assert fisher_exact(0, 0, 3, 4) == 1.0


@pytest.mark.parametrize(
    "table",
    [(30, 70, 45, 55), (3, 997, 12, 988), (0, 40, 6, 34), (5000, 15000, 5200, 14800), (61_000, 39_000, 60_500, 39_500)],
)
def test_fisher_exact_equals_the_sum_over_every_table(table: tuple[int, int, int, int]) -> None:
    assert fisher_exact(*table) == pytest.approx(fisher_by_summing(*table), rel=1e-9, abs=1e-300)


def test_fisher_exact_on_two_million_deals() -> None:
    """`compare` tests whole populations: a table of two million deals is answered, exactly (a
    sum over every table costs seconds here; SciPy's tails cost milliseconds, docs/metrics.md)."""
    p = fisher_exact(600_000, 400_000, 601_400, 398_600)
    # the same table by the chi-square, which is exact enough at this size: they agree closely
    chi = chi_square([[600_000, 400_000], [601_400, 398_600]])
    assert chi is not None and 0.03 < p < 0.06 and p == pytest.approx(chi.p, rel=0.02)


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


def test_chi_square_tail_matches_closed_forms() -> None:
    """Even degrees of freedom have a closed form (a Poisson sum), 1 and 3 one through erfc."""
    for x in (0.1, 1.0, 3.841459, 10.0, 40.0):
        assert chi_square_sf(x, 2) == pytest.approx(math.exp(-x / 2), rel=1e-9)
        assert chi_square_sf(x, 4) == pytest.approx(math.exp(-x / 2) * (1 + x / 2), rel=1e-9)
        assert chi_square_sf(x, 6) == pytest.approx(math.exp(-x / 2) * (1 + x / 2 + x * x / 8), rel=1e-9)
        assert chi_square_sf(x, 1) == pytest.approx(math.erfc(math.sqrt(x / 2)), rel=1e-9)
        three = math.erfc(math.sqrt(x / 2)) + math.sqrt(2 * x / math.pi) * math.exp(-x / 2)
        assert chi_square_sf(x, 3) == pytest.approx(three, rel=1e-9)
    assert chi_square_sf(3.841458820694124, 1) == pytest.approx(0.05, abs=1e-12)  # the textbook critical value
    assert chi_square_sf(0.0, 5) == 1.0


def test_chi_square_test_of_independence() -> None:
    # [[10, 20], [30, 40]]: expected 12, 18, 28, 42; statistic 1/3 + 2/9 + 1/7 + 2/21
    result = chi_square([[10, 20], [30, 40]])
    assert result is not None
    assert result.statistic == pytest.approx(1 / 3 + 2 / 9 + 1 / 7 + 2 / 21)
    assert (result.df, result.min_expected) == (1, 12.0)
    assert result.p == pytest.approx(math.erfc(math.sqrt(result.statistic / 2)))
    three = chi_square([[10, 10], [20, 0], [5, 15], [0, 0]])  # an empty row is left out
    assert three is not None and three.df == 2 and three.p < 0.001
    assert chi_square([[3, 0], [4, 0]]) is None  # one column: nothing to compare


def test_two_by_two_takes_fisher_when_an_expected_count_is_small() -> None:
    small = two_by_two(8, 2, 1, 5)
    assert small.test == "fisher" and small.p == pytest.approx(fisher_exact(8, 2, 1, 5))
    large = two_by_two(300, 700, 400, 600)
    assert large.test == "chi-square" and large.p < 1e-5
    assert two_by_two(0, 0, 0, 0).p == 1.0


def test_mann_whitney_equals_scipy_both_ways() -> None:
    """Two-sided and one-sided ("the first tends larger"), tie-corrected, no continuity correction,
    against scipy.stats.mannwhitneyu on samples with many ties."""
    import random

    from scipy.stats import mannwhitneyu

    rng = random.Random(7)
    for _ in range(20):
        xs = [float(rng.randrange(0, 30)) for _ in range(rng.randrange(5, 80))]
        ys = [float(rng.randrange(3, 35)) for _ in range(rng.randrange(5, 80))]
        ours = mann_whitney(xs, ys)
        assert ours is not None
        for alternative, p in (("two-sided", ours.p), ("greater", ours.p_greater)):
            theirs = mannwhitneyu(xs, ys, alternative=alternative, method="asymptotic", use_continuity=False)
            assert p == pytest.approx(float(theirs.pvalue), rel=1e-9, abs=1e-15)
        assert ours.u == float(mannwhitneyu(xs, ys).statistic)
