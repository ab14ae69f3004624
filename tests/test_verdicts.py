"""The verdict procedure (store/verdicts.py): a group is named for its own difference only, the
verdicts of one answer are rarely wrong together, and a real difference is found."""

from __future__ import annotations

import random

import pytest

from store.stats import two_by_two
from store.verdicts import ALPHA, Compared, Group, split_off

pytestmark = pytest.mark.unit


def words(family: int, key: str, rate: float, rest: float, p: float) -> str:
    return f"{family}:{key} {'better' if rate > rest else 'worse'} ({rate:.0%} vs {rest:.0%})"


def named(results: list[dict[str, Compared]]) -> list[str]:
    return [t.verdict for family in results for t in family.values() if t.significant]


def test_one_strong_group_is_named_and_the_equal_others_are_not() -> None:
    family = [Group("a", 600, 1000), Group("b", 300, 1000), Group("c", 300, 1000)]
    # each against all the others would call b worse: its "rest" holds the strong a
    assert two_by_two(300, 700, 900, 1100).p < 1e-10
    [found] = split_off([family], words)
    assert named([found]) == ["0:a better (60% vs 30%)"]
    b = found["b"]
    # once a is named, b is compared with c alone: one test, counted once
    assert (b.rest_successes, b.rest_n, b.significant) == (300, 1000, False)
    assert b.p == pytest.approx(1.0) and b.verdict == "no significant difference"
    assert found["a"].p_adjusted == pytest.approx(min(1.0, (found["a"].p or 0) * 3))


def test_a_strong_and_a_weak_group_are_both_named() -> None:
    family = [Group("a", 600, 1000), Group("b", 300, 1000), Group("c", 450, 1000), Group("d", 450, 1000)]
    [found] = split_off([family], words)
    assert sorted(named([found])) == ["0:a better (60% vs 40%)", "0:b worse (30% vs 45%)"]


def test_adjusted_p_counts_the_groups_and_the_families() -> None:
    families = [[Group("a", 40, 100), Group("b", 30, 100), Group("c", 35, 100)], [Group("x", 5, 50), Group("y", 9, 50)]]
    first, second = split_off(families, words)
    a = first["a"]
    assert a.p is not None and a.p_adjusted == pytest.approx(min(1.0, a.p * 3 * 2))
    x = second["x"]
    assert x.p is not None and x.p_adjusted == pytest.approx(min(1.0, x.p * 1 * 2))  # two groups: one test
    assert x.test == "chi-square" and x.rest_successes == 9


def test_too_few_deals_is_said_and_not_tested() -> None:
    [found] = split_off([[Group("a", 10, 20), Group("b", 40, 100), Group("c", 60, 100)]], words)
    assert found["a"].test is None and found["a"].p is None
    assert found["a"].verdict == "not enough deals to compare (20 settled, 200 in the rest; 30 each)"
    # the small group still counts in the others' rest
    assert found["b"].rest_n == 120


def test_verdicts_are_rarely_wrong_and_real_differences_are_found() -> None:
    """Eight reps in three phases, 300 deals each: with no difference, any verdict at all in at most
    ALPHA of the answers (plus noise); with one rep at 75% where the others convert 55%, found."""
    rng = random.Random(16)

    def family(rates: list[float]) -> list[Group]:
        return [Group(f"rep-{i}", sum(rng.random() < r for _ in range(300)), 300) for i, r in enumerate(rates)]

    runs = 300
    false_alarms = sum(bool(named(split_off([family([0.55] * 8) for _ in range(3)], words))) for _ in range(runs))
    assert false_alarms <= runs * ALPHA * 2
    found = 0
    for _ in range(50):
        verdicts = named(split_off([family([0.75] + [0.55] * 7), family([0.55] * 8), family([0.55] * 8)], words))
        found += verdicts == [verdicts[0]] and verdicts[0].startswith("0:rep-0 better")
    assert found >= 48
