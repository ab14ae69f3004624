"""Which groups (reps in a phase, values of a fact) differ from the others, with few false alarms.

A manager reads the verdicts, not the p-values, and acts on each one: every verdict that is wrong
costs a coaching talk or a changed playbook. So the verdicts of one answer (all reps in all
phases, or all values of a fact for both outcomes) are wrong together with probability at most
`ALPHA` (family-wise error), and a group is only ever named for its own difference.

The procedure is Holm's step-down, with each group compared against the groups not yet named:

1. every group with at least `MIN_DEALS` settled deals is compared with the rest of the pool (all
   groups not yet named, small ones included) by `significance.two_by_two`, and again with that rest
   less the one group that pulls it furthest the other way; its p is the larger of the two;
2. the smallest p, times the number of groups compared in this step and the number of families
   (Bonferroni across phases or outcomes), is its Holm-adjusted p (never below the previous
   step's); when that is below `ALPHA`, that group is named, leaves the pool, and step 1 runs
   again on what remains; otherwise the procedure stops, and the groups of that last step get
   Holm's adjusted p of their own rank in it (`significance.holm`, never below the previous
   step's), as statsmodels' `multipletests(method="holm")` gives for those p-values.

Comparing against what remains is what keeps one strong group from making the others look weak:
with one close technique twice as good as two equal others, "each against all the rest" finds the
other two worse than the rest (which holds the good one); here, once the good one is named, the
remaining two are compared with each other and found alike. With only two groups left, both
comparisons are one test: it counts once.

The second comparison of step 1 is for the strong group that is *not* named: one rep truly better
but with too few deals to show it still lifts the rest above every ordinary rep, and an ordinary
rep a little unlucky is then "worse than the rest" (true of that rest, false of the rep). Comparing
each against the rest alone, the verdicts of eight reps with 100 deals each, one at 75% and seven
at 55%, are wrong in about 1.2% of the answers; with the second comparison in 0.4%
(`tests/unit/test_verdicts.py`), at the cost of naming that rep somewhat less often (65% of the answers
instead of 74%). It guards against one such group per step; two strong groups unnamed at once
can still lift the rest.

A group given no verdict is not "the same": its verdict says what was seen and how many settled
deals (the rest as it is, 80% power, at the level it was tested at) would tell a difference that
size (`sample_size.deals_needed`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from pydantic import BaseModel

from analytics.sample_size import deals_needed, deals_needed_each
from analytics.significance import holm, two_by_two, wilson

ALPHA = 0.01  # family-wise: the chance that any verdict of one answer is a false alarm
MIN_DEALS = 30  # settled deals a group (and the rest of its pool) needs to be compared at all


@dataclass(frozen=True)
class Group:
    key: str
    successes: int
    n: int  # settled deals: those whose outcome is known


class Compared(BaseModel):
    """One group's rate against the rest of its pool, with the test and its verdict in words."""

    successes: int
    n: int
    rate: float | None
    interval: tuple[float, float] | None  # 95% Wilson
    rest_successes: int | None
    rest_n: int | None
    rest_rate: float | None
    test: str | None  # "fisher" or "chi-square"; None when not compared
    p: float | None
    p_adjusted: float | None  # Holm, across the whole answer
    significant: bool
    verdict: str
    # without a verdict: the settled deals this group would need (its rest as it is) for the
    # difference seen so far to be told at the level it was tested at, with 80% power; None when
    # named, when the rates are the same, or when the rest is too small for any number to do
    needed: int | None = None


def p_text(p: float) -> str:
    return "p<0.001" if p < 0.001 else f"p={p:.2g}"


def _share(k: int, n: int) -> float | None:
    return k / n if n else None


def split_off(
    families: Sequence[Sequence[Group]],
    wording: Callable[[int, str, float, float, float], str],
    *,
    alpha: float = ALPHA,
    min_deals: int = MIN_DEALS,
) -> list[dict[str, Compared]]:
    """Each family's groups, tested as the module says; `wording(family, key, rate, rest_rate,
    p_adjusted)` words a significant finding. Returns, per family, every group's result."""
    comparable = [
        sum(1 for g in family if g.n >= min_deals and sum(o.n for o in family) - g.n >= min_deals) > 0
        for family in families
    ]
    count = max(1, sum(comparable))
    results: list[dict[str, Compared]] = []
    for index, family in enumerate(families):
        found: dict[str, Compared] = {}
        named: set[str] = set()
        floor = 0.0
        while True:
            pool = [g for g in family if g.key not in named]
            total_k, total_n = sum(g.successes for g in pool), sum(g.n for g in pool)
            tested = []
            for g in pool:
                rest_k, rest_n = total_k - g.successes, total_n - g.n
                if g.n >= min_deals and rest_n >= min_deals:
                    p, test = _against_the_rest(g, pool, min_deals)
                    tested.append((p, g, rest_k, rest_n, test))
            if not tested:
                break
            # with two groups left, the two comparisons are one test
            compared = 1 if len(pool) == 2 and len(tested) == 2 else len(tested)
            scaled = [t[0] * count for t in tested]  # Bonferroni across the families
            holm_p = [min(1.0, x) for x in scaled] if compared == 1 else holm(scaled)
            for (p, g, rest_k, rest_n, test), held in zip(tested, holm_p, strict=True):
                adjusted = max(floor, held)
                level = alpha / (compared * count)
                needed = _needed(g, rest_k, rest_n, level)
                words = _cannot_tell(g, rest_k, rest_n, level, f"adjusted {p_text(adjusted)}")
                found[g.key] = _tested(g, rest_k, rest_n, test, p, adjusted, False, words, needed)
            p, best, rest_k, rest_n, test = min(tested, key=lambda t: (t[0], -(t[1].successes / t[1].n), t[1].key))
            adjusted = max(floor, min(1.0, p * compared * count))
            if adjusted >= alpha:
                break
            rate, rest_rate = best.successes / best.n, rest_k / rest_n
            words = wording(index, best.key, rate, rest_rate, adjusted)
            found[best.key] = _tested(best, rest_k, rest_n, test, p, adjusted, True, words)
            named.add(best.key)
            floor = adjusted
        everyone, all_k = sum(g.n for g in family), sum(g.successes for g in family)
        for g in family:
            if g.key not in found:
                rest_k, rest_n = all_k - g.successes, everyone - g.n
                level = alpha / (len(family) * count)
                needed = _needed(g, rest_k, rest_n, level)
                why = f"{g.n} settled, {rest_n} in the rest; {min_deals} each are needed to compare at all"
                found[g.key] = _tested(
                    g, None, None, None, None, None, False, _cannot_tell(g, rest_k, rest_n, level, why), needed
                )
        results.append(found)
    return results


def _against_the_rest(g: Group, pool: Sequence[Group], min_deals: int) -> tuple[float, str]:
    """`g` against the rest of its pool, and against that rest without the one group that pulls
    it furthest the other way (the most deals times the farthest rate on the far side): the
    larger p of the two, so that one strong group not yet named cannot make an ordinary one
    look weak (nor one weak group an ordinary one look strong). Rejecting only when both tests
    do is an intersection-union test: its error stays at most the level of each."""
    others = [o for o in pool if o.key != g.key]
    rest_k, rest_n = sum(o.successes for o in others), sum(o.n for o in others)
    full = two_by_two(g.successes, g.n - g.successes, rest_k, rest_n - rest_k)
    if len(others) < 2:
        return full.p, full.test
    rest_rate = rest_k / rest_n
    side = 1 if g.successes / g.n < rest_rate else -1  # a "worse" claim: the highest pull counts

    def pull(o: Group) -> float:
        return side * (o.successes - o.n * rest_rate)

    strongest = max(others, key=lambda o: (pull(o), o.key))
    k, n = rest_k - strongest.successes, rest_n - strongest.n
    if pull(strongest) <= 0 or n < min_deals:
        return full.p, full.test
    without = two_by_two(g.successes, g.n - g.successes, k, n - k)
    return (full.p, full.test) if full.p >= without.p else (without.p, without.test)


def _needed(g: Group, rest_k: int, rest_n: int, level: float) -> int | None:
    if not g.n or not rest_n:
        return None
    return deals_needed(g.successes / g.n, rest_k / rest_n, rest_n, level)


def _cannot_tell(g: Group, rest_k: int, rest_n: int, level: float, why: str) -> str:
    """No verdict, in words that do not read as "the same": what was seen, and what it would take."""
    if not g.n or not rest_n:
        return f"not enough data to tell ({why})"
    rate, rest = g.successes / g.n, rest_k / rest_n
    needed = deals_needed(rate, rest, rest_n, level)
    seen = f"{rate:.0%} vs {rest:.0%} for the rest"
    if rate == rest:
        return f"not enough data to tell: {seen}, no difference so far ({why})"
    if needed is None:
        each = deals_needed_each(rate, rest, level)
        return (
            f"not enough data to tell: {seen} ({why}); about {each:,} settled deals here and as many in the rest "
            "would tell a difference this size"
        )
    return (
        f"not enough data to tell: {seen} ({why}); about {needed:,} settled deals (it has {g.n}) would tell "
        "a difference this size"
    )


def _tested(
    g: Group,
    rest_k: int | None,
    rest_n: int | None,
    test: str | None,
    p: float | None,
    adjusted: float | None,
    significant: bool,
    verdict: str,
    needed: int | None = None,
) -> Compared:
    return Compared(
        successes=g.successes,
        n=g.n,
        rate=_share(g.successes, g.n),
        interval=wilson(g.successes, g.n),
        rest_successes=rest_k,
        rest_n=rest_n,
        rest_rate=None if rest_k is None or not rest_n else rest_k / rest_n,
        test=test,
        p=p,
        p_adjusted=adjusted,
        significant=significant,
        verdict=verdict,
        needed=needed,
    )
