"""Which groups (reps in a phase, values of a fact) differ from the others, with few false alarms.

A manager reads the verdicts, not the p-values, and acts on each one: every verdict that is wrong
costs a coaching talk or a changed playbook. So the verdicts of one answer (all reps in all
phases, or all values of a fact for both outcomes) are wrong together with probability at most
`ALPHA` (family-wise error), and a group is only ever named for its own difference.

The procedure is Holm's step-down, with each group compared against the groups not yet named:

1. every group with at least `MIN_DEALS` settled deals is compared with the rest of the pool (all
   groups not yet named, small ones included) by `stats.two_by_two`;
2. the smallest p, times the number of groups compared in this step and the number of families
   (Bonferroni across phases or outcomes), is its Holm-adjusted p (never below the previous
   step's); when that is below `ALPHA`, that group is named, leaves the pool, and step 1 runs
   again on what remains; otherwise the procedure stops.

Comparing against what remains is what keeps one strong group from making the others look weak:
with one close technique twice as good as two equal others, "each against all the rest" finds the
other two worse than the rest (which holds the good one); here, once the good one is named, the
remaining two are compared with each other and found alike. With only two groups left, both
comparisons are one test: it counts once.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from pydantic import BaseModel

from store.stats import two_by_two, wilson

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
                    t = two_by_two(g.successes, g.n - g.successes, rest_k, rest_n - rest_k)
                    tested.append((t.p, g, rest_k, rest_n, t.test))
            if not tested:
                break
            # with two groups left, the two comparisons are one test
            compared = 1 if len(pool) == 2 and len(tested) == 2 else len(tested)
            for p, g, rest_k, rest_n, test in tested:
                adjusted = max(floor, min(1.0, p * compared * count))
                found[g.key] = _tested(g, rest_k, rest_n, test, p, adjusted, False, "no significant difference")
            p, best, rest_k, rest_n, test = min(tested, key=lambda t: (t[0], -(t[1].successes / t[1].n), t[1].key))
            adjusted = max(floor, min(1.0, p * compared * count))
            if adjusted >= alpha:
                break
            rate, rest_rate = best.successes / best.n, rest_k / rest_n
            words = wording(index, best.key, rate, rest_rate, adjusted)
            found[best.key] = _tested(best, rest_k, rest_n, test, p, adjusted, True, words)
            named.add(best.key)
            floor = adjusted
        everyone = sum(g.n for g in family)
        for g in family:
            if g.key not in found:
                why = f"not enough deals to compare ({g.n} settled, {everyone - g.n} in the rest; {min_deals} each)"
                found[g.key] = _tested(g, None, None, None, None, None, False, why)
        results.append(found)
    return results


def _tested(
    g: Group,
    rest_k: int | None,
    rest_n: int | None,
    test: str | None,
    p: float | None,
    adjusted: float | None,
    significant: bool,
    verdict: str,
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
    )
