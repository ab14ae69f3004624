"""Kaplan-Meier over touches (analytics/kaplan_meier.py) against statsmodels, and the interval of the share
of answers after k touches: its derivative and its coverage on simulated follow-ups."""

from __future__ import annotations

import math
import random
from collections import Counter

import numpy as np
import pytest
from statsmodels.duration.survfunc import SurvfuncRight

from analytics.kaplan_meier import _partial, answers_after, greenwood_se, horizon, life_table, survival


def _sample(rng: random.Random, n: int, answer: list[float], stop: list[float]) -> tuple[Counter[int], Counter[int]]:
    """Deals whose buyer answers at touch T (weights `answer`, the last one: never) and whose
    seller stops at touch C (weights `stop`): answered at T when T <= C, else censored at C."""
    answered: Counter[int] = Counter()
    censored: Counter[int] = Counter()
    never = len(answer) - 1
    for _ in range(n):
        t = rng.choices(range(len(answer)), answer)[0]
        c = rng.choices(range(len(stop)), stop)[0]
        if t != never and t <= c:
            answered[t] += 1
        else:
            censored[c] += 1
    return answered, censored


def test_survival_and_greenwood_equal_statsmodels() -> None:
    rng = random.Random(11)
    answered, censored = _sample(rng, 700, [1, 2, 2, 3, 3, 2, 2, 1, 1, 4], [1, 1, 1, 1, 1, 1, 1, 1, 3])
    table = life_table(answered, censored)
    times = [t for t, n in answered.items() for _ in range(n)] + [t for t, n in censored.items() for _ in range(n)]
    events = [1] * sum(answered.values()) + [0] * sum(censored.values())
    theirs = SurvfuncRight(np.array(times), np.array(events))
    ours, se = survival(table), greenwood_se(table)
    for t, s, s_se in zip(theirs.surv_times, theirs.surv_prob, theirs.surv_prob_se, strict=True):
        assert ours[int(t)] == pytest.approx(float(s), rel=1e-12)
        if not math.isnan(s_se):
            assert se[int(t)] == pytest.approx(float(s_se), rel=1e-9)
    assert [r.at_risk for r in table][:2] == [700, 700 - answered[0] - censored[0]]
    assert horizon(table, 30) == max(r.touches for r in table if r.at_risk >= 30)


def test_the_share_is_conditional_on_an_answer_within_the_horizon() -> None:
    # no one stops: the share is the plain count of the answers within 4 touches that came after k
    answered, censored = Counter({1: 10, 2: 20, 3: 30, 4: 40}), Counter({4: 100})
    table = life_table(answered, censored)
    found = answers_after(table, 2, 4)
    assert found is not None and found.value == pytest.approx(70 / 100)
    low, high = found.interval
    assert low < 0.7 < high
    assert answers_after(life_table(Counter(), Counter({3: 50})), 1, 3) is None  # no answer at all
    with pytest.raises(ValueError):
        answers_after(table, 4, 4)


def test_the_derivative_of_the_share_is_the_numerical_one() -> None:
    h = [0.05, 0.1, 0.15, 0.2, 0.3, 0.25, 0.4]
    k = 2

    def share(x: list[float]) -> float:
        s_k, s_h = math.prod(1 - v for v in x[: k + 1]), math.prod(1 - v for v in x)
        return (s_k - s_h) / (1 - s_h)

    for j in range(len(h)):
        step = 1e-6
        up, down = list(h), list(h)
        up[j] += step
        down[j] -= step
        assert _partial(h, j, k) == pytest.approx((share(up) - share(down)) / (2 * step), rel=1e-6)


def test_the_interval_covers_the_truth_about_95_percent_of_the_time() -> None:
    """300 simulated data sets of 1,000 deals, sellers stopping early in seed 004's shape."""
    rng = random.Random(2026)
    answer = [0.0, 0.035, 0.035, 0.035, 0.035, 0.14, 0.14, 0.14, 0.14, 0.3]  # touch 0..8, then never
    stop = [0.0, 0.44, 0.22, 0.14, 0.12, 0, 0, 0, 0.08]
    truth = {k: 1 - sum(answer[1 : k + 1]) / sum(answer[1:9]) for k in (1, 2, 3, 4)}
    covered: Counter[int] = Counter()
    runs = 300
    for _ in range(runs):
        table = life_table(*_sample(rng, 1000, answer, stop))
        for k, want in truth.items():
            found = answers_after(table, k, 8)
            assert found is not None
            covered[k] += found.interval[0] <= want <= found.interval[1]
    for k in truth:
        assert 0.90 * runs <= covered[k] <= 0.99 * runs, (k, covered[k])
