"""The statistics of analytics/ against SciPy and statsmodels on random and edge-case inputs
(hypothesis): zeros, ties, n = 1, very large n. Which statistic is the library's outright and which
is written here and checked, and why, is in docs/metrics.md#statistics."""

from __future__ import annotations

import math
import random
from collections import Counter
from statistics import NormalDist

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from scipy.stats import chi2_contingency, mannwhitneyu
from statsmodels.duration.survfunc import SurvfuncRight
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.power import NormalIndPower
from statsmodels.stats.proportion import proportion_confint

from analytics.kaplan_meier import greenwood_se, life_table, survival
from analytics.sample_size import deals_needed_each
from analytics.significance import chi_square, fisher_exact, holm, mann_whitney, wilson
from analytics.verdicts import Group, split_off
from tests.support.stats import fisher_by_summing

# no deadline: the machine is shared, and a slow example is not a wrong one
CHECK = settings(max_examples=300, deadline=None, derandomize=True)  # the same examples on every run: CI repeatable


# --- Wilson: written here (statsmodels is a development dependency only) ----------------------------


@st.composite
def proportions(draw: st.DrawFn) -> tuple[int, int]:
    n = draw(st.one_of(st.integers(1, 50), st.integers(1, 10**9)))
    k = draw(st.one_of(st.sampled_from([0, n, n // 2]), st.integers(0, n)))
    return k, n


@CHECK
@given(proportions(), st.sampled_from([0.05, 0.01, 0.2]))
def test_wilson_equals_statsmodels(kn: tuple[int, int], alpha: float) -> None:
    k, n = kn
    z = NormalDist().inv_cdf(1 - alpha / 2)
    ours = wilson(k, n, z) if alpha != 0.05 else wilson(k, n)  # the default is the 95% interval
    low, high = proportion_confint(k, n, alpha=alpha, method="wilson")
    assert ours is not None
    assert ours[0] == pytest.approx(max(0.0, float(low)), rel=1e-9, abs=1e-12)
    assert ours[1] == pytest.approx(min(1.0, float(high)), rel=1e-9, abs=1e-12)
    assert 0.0 <= ours[0] <= k / n <= ours[1] <= 1.0


def test_wilson_without_observations_is_none() -> None:
    assert wilson(0, 0) is None


# --- Fisher: SciPy's outright; checked to be exact against the sum over every table ----------------


counts = st.one_of(st.integers(0, 3), st.integers(0, 60), st.integers(0, 3000))


@CHECK
@given(counts, counts, counts, counts)
def test_fisher_is_exact_on_any_table(a: int, b: int, c: int, d: int) -> None:
    p = fisher_exact(a, b, c, d)
    if a + b == 0 or c + d == 0:
        assert p == 1.0  # an empty row: nothing to compare
        return
    assert p == pytest.approx(fisher_by_summing(a, b, c, d), rel=1e-9, abs=1e-300)
    assert 0.0 <= p <= 1.0
    assert fisher_exact(c, d, a, b) == pytest.approx(p, rel=1e-9, abs=1e-300)  # rows swapped
    assert fisher_exact(b, a, d, c) == pytest.approx(p, rel=1e-9, abs=1e-300)  # columns swapped


# --- Pearson's chi-square: the statistic written here, the tail SciPy's -----------------------------


tables = st.integers(2, 5).flatmap(
    lambda rows: st.integers(2, 5).flatmap(
        lambda cols: st.lists(
            st.lists(st.one_of(st.just(0), st.integers(0, 40), st.integers(0, 10**9)), min_size=cols, max_size=cols),
            min_size=rows,
            max_size=rows,
        )
    )
)


@CHECK
@given(tables)
def test_chi_square_equals_scipy(table: list[list[int]]) -> None:
    ours = chi_square(table)
    # SciPy refuses a table with an empty row or column; ours leaves them out first
    rows = [r for r in table if sum(r)]
    keep = [j for j in range(len(table[0])) if sum(r[j] for r in rows)]
    if len(rows) < 2 or len(keep) < 2:
        assert ours is None
        return
    kept = np.array([[r[j] for j in keep] for r in rows], dtype=float)
    theirs = chi2_contingency(kept, correction=False)
    assert ours is not None
    assert ours.statistic == pytest.approx(float(theirs.statistic), rel=1e-9, abs=1e-9)
    assert ours.df == theirs.dof
    assert ours.p == pytest.approx(float(theirs.pvalue), rel=1e-6, abs=1e-300)
    assert ours.min_expected == pytest.approx(float(theirs.expected_freq.min()), rel=1e-12)


def test_chi_square_of_independent_counts_has_p_one() -> None:
    result = chi_square([[10, 20], [20, 40]])
    assert result is not None and result.statistic == pytest.approx(0.0, abs=1e-12) and result.p == 1.0


# --- Mann-Whitney: written here, checked against SciPy's asymptotic method ------------------------


samples = st.lists(
    st.one_of(st.sampled_from([0.0, 1.0, 2.0, 3.0]), st.floats(0, 1e7, allow_nan=False)), min_size=1, max_size=60
)


def _equals_scipy(xs: list[float], ys: list[float]) -> None:
    ours = mann_whitney(xs, ys)
    assert ours is not None
    assert ours.u == float(mannwhitneyu(xs, ys, method="asymptotic").statistic)
    for alternative, p in (("two-sided", ours.p), ("greater", ours.p_greater), ("less", 1 - ours.p_greater)):
        theirs = float(mannwhitneyu(xs, ys, alternative=alternative, method="asymptotic", use_continuity=False).pvalue)
        if math.isnan(theirs):
            # every value the same: nothing to rank, SciPy answers NaN; no evidence either way
            assert len(set(xs + ys)) == 1 and (ours.p, ours.p_greater) == (1.0, 0.5)
        else:
            assert p == pytest.approx(theirs, rel=1e-9, abs=1e-15)


@CHECK
@given(samples, samples)
def test_mann_whitney_equals_scipy(xs: list[float], ys: list[float]) -> None:
    _equals_scipy(xs, ys)


def test_mann_whitney_on_large_samples_with_ties() -> None:
    rng = random.Random(3)
    xs = [float(rng.randrange(0, 500)) for _ in range(40_000)]
    ys = [float(rng.randrange(2, 505)) for _ in range(60_000)]
    _equals_scipy(xs, ys)


def test_mann_whitney_of_an_empty_group_is_none() -> None:
    assert mann_whitney([], [1.0]) is None and mann_whitney([1.0], []) is None


# --- Holm: written here (a few lines), checked against statsmodels' multipletests ------------------


p_values = st.lists(
    st.one_of(st.sampled_from([0.0, 1.0, 0.01, 0.05]), st.floats(0, 1, allow_nan=False)), min_size=1, max_size=60
)


@settings(max_examples=60, deadline=None)  # statsmodels' multipletests costs tens of ms a call
@given(p_values)
def test_holm_equals_statsmodels(ps: list[float]) -> None:
    theirs = multipletests(ps, method="holm")[1]
    assert holm(ps) == pytest.approx([float(x) for x in theirs], rel=1e-12, abs=1e-300)


def test_holm_on_many_hypotheses() -> None:
    rng = random.Random(5)
    ps = [rng.random() ** 8 for _ in range(20_000)]
    assert holm(ps) == pytest.approx([float(x) for x in multipletests(ps, method="holm")[1]], rel=1e-12)


def test_groups_not_named_get_holms_adjusted_p_of_the_last_step() -> None:
    """No group named: the procedure's one step is Holm over each group against the rest, so every
    group's adjusted p is Holm's (it was the smallest's multiplier for all, before the check)."""
    family = [Group("a", 40, 100), Group("b", 30, 100), Group("c", 35, 100), Group("d", 33, 100)]
    [found] = split_off([family], lambda *_: "named")
    assert not any(t.significant for t in found.values())
    ps = [found[k].p or 0.0 for k in "abcd"]
    theirs = [float(x) for x in multipletests(ps, method="holm")[1]]
    assert [found[k].p_adjusted for k in "abcd"] == pytest.approx(theirs)


# --- sample size: the normal approximation statsmodels solves too ---------------------------------


@CHECK
@given(st.floats(0.01, 0.99), st.floats(0.01, 0.99), st.sampled_from([0.05, 0.01, 0.001]))
def test_deals_needed_each_equals_statsmodels(p1: float, p2: float, level: float) -> None:
    ours = deals_needed_each(p1, p2, level)
    if p1 == p2:
        assert ours is None
        return
    assert ours is not None
    assume(ours >= 10)  # statsmodels' root finder gives up on a handful of deals
    effect = abs(p1 - p2) / math.sqrt((p1 * (1 - p1) + p2 * (1 - p2)) / 2)
    theirs = float(NormalIndPower().solve_power(effect_size=effect, alpha=level, power=0.8, ratio=1))
    assume(math.isfinite(theirs))  # its root finder can fail to converge (it warns, and says NaN)
    # statsmodels counts the power of the far tail too (at most 1e-6 at 5%: the deals it needs are a
    # few millionths fewer), where the normal approximation used here leaves it out
    assert math.ceil(theirs) <= ours <= math.ceil(theirs * (1 + 1e-5))


# --- Kaplan-Meier and Greenwood: written here, checked against statsmodels' SurvfuncRight ---------


touch_counts = st.dictionaries(st.integers(0, 12), st.one_of(st.integers(1, 3), st.integers(1, 5000)), max_size=8)


@CHECK
@given(touch_counts, touch_counts)
def test_kaplan_meier_equals_statsmodels(answered: dict[int, int], censored: dict[int, int]) -> None:
    if not answered and not censored:
        assert life_table(Counter(), Counter()) == []
        return
    table = life_table(Counter(answered), Counter(censored))
    times = [t for t, n in answered.items() for _ in range(n)] + [t for t, n in censored.items() for _ in range(n)]
    events = [1] * sum(answered.values()) + [0] * sum(censored.values())
    theirs = SurvfuncRight(np.array(times, dtype=float), np.array(events))
    ours, se = survival(table), greenwood_se(table)
    for t, s, s_se in zip(theirs.surv_times, theirs.surv_prob, theirs.surv_prob_se, strict=True):
        assert ours[int(t)] == pytest.approx(float(s), rel=1e-12, abs=1e-15)
        if not math.isnan(s_se) and s > 0:
            assert se[int(t)] == pytest.approx(float(s_se), rel=1e-9, abs=1e-15)
    assert table[0].at_risk == len(times)
