"""Follow-up persistence: how many touches deals took before the buyer answered, the deal was won
or it was lost, how many touches buyers take to answer, and when each rep gave up; from the
counts `store.follow_up_persistence` takes (outcome, touches before it) per rep.

Seed 004: 44% of sellers give up after one rejection, 22% after two, 14% after three and 12% after
four, while 80% of sales need at least five follow-ups. Counting, among the deals that did get an
answer, those that got it only after the k-th touch cannot check that: the giving-up it would
measure hides the later answers (with sellers in seed 004's shape and buyers 80% of whom answer
after five or more touches, that count says 34%). The share of answers after k touches is
estimated instead by Kaplan-Meier over touches (`analytics.kaplan_meier`), each deal counted for
as long as someone kept following it up, with its interval; where too few deals were followed up
past k touches it says so instead of giving a number. Beside it, how far each rep followed up
before giving up.

Definitions (docs/metrics.md repeats them; tests/application/test_insights.py checks each against a plain
Python computation over the same events, and the estimate on buyers and sellers with a known
answer-time and give-up distribution):

- *Answered*: outcome reply or won, at its touches before. Every other outcome is *censored* there:
  a loss is the seller *giving up* after that many touches; an opt-out and an open deal stop
  being followed up there too, as far as the log tells.
- *Answers after k touches* (k = 1..4; after 4 is "five or more"): of the answers that come within
  the *horizon* (the most touches at which at least `MIN_AT_RISK` deals were still being followed
  up with no answer), the share that come after the k-th touch, estimated as
  `analytics.kaplan_meier` says; not given when fewer than `MIN_AT_RISK` deals were followed up
  past k touches.
- *Gave up after k touches*: deals lost with no answer after k touches (0..4, and five or more),
  as a share of the rep's deals given up.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable

from pydantic import BaseModel

from analytics import kaplan_meier

OUTCOMES = ("reply", "won", "lost", "opted_out", "open")
ANSWERED = ("reply", "won")
GIVE_UP_AFTER = (1, 2, 3, 4)
PERSISTENT = 5
MIN_AT_RISK = 30  # deals still followed up, with no answer, for a count of touches to tell anything


class TouchRow(BaseModel):
    """Deals by outcome that had exactly `touches` touches before it."""

    touches: int
    reply: int
    won: int
    lost: int
    opted_out: int
    open: int


class AnswersAfter(BaseModel):
    """Of the answers that come within the horizon, the share that come after the `after`-th
    touch: what a seller who gives up there loses."""

    after: int
    went_past: int  # deals still followed up, with no answer, after `after` touches
    share: float | None  # None: too few went past to say
    interval: tuple[float, float] | None  # 95%
    words: str


class GaveUp(BaseModel):
    """Deals lost with no answer, by the touches sent before: `after` 0..4 and `five_or_more`."""

    deals: int
    after: dict[str, int]  # "0".."4", "5+"
    shares: dict[str, float | None]


class Figures(BaseModel):
    deals: int
    outcomes: dict[str, int]
    distribution: list[TouchRow]
    median_touches: dict[str, float | None]
    answered: int
    horizon: int | None  # the most touches at least MIN_AT_RISK deals were followed up to
    not_answered_by_horizon: float | None  # of the buyers, the share with no answer after `horizon` touches
    answers_after: list[AnswersAfter]  # k = 1..4; after 4 is "five or more"
    gave_up: GaveUp


class RepFigures(Figures):
    rep: str


def tally(rows: Iterable[tuple[str, str, int, int]]) -> tuple[Figures, list[RepFigures]]:
    """The figures of everyone and of each rep, from (rep, outcome, touches before it, deals)."""
    overall: Counter[tuple[str, int]] = Counter()
    per_rep: dict[str, Counter[tuple[str, int]]] = defaultdict(Counter)
    for rep, outcome, touches, deals in rows:
        overall[(outcome, touches)] += deals
        per_rep[rep][(outcome, touches)] += deals
    reps = [RepFigures(rep=rep, **dict(figures(per_rep[rep]))) for rep in sorted(per_rep)]
    return figures(overall), reps


def figures(counts: Counter[tuple[str, int]]) -> Figures:
    def deals(outcome: str, touches: int) -> int:
        return counts.get((outcome, touches), 0)

    most = max((t for _, t in counts), default=-1)
    distribution = [
        TouchRow(touches=t, **{o: deals(o, t) for o in OUTCOMES})
        for t in range(most + 1)
        if any(deals(o, t) for o in OUTCOMES)
    ]
    answered: Counter[int] = Counter()
    censored: Counter[int] = Counter()
    for (outcome, touches), n in counts.items():
        (answered if outcome in ANSWERED else censored)[touches] += n
    table = kaplan_meier.life_table(answered, censored)
    within = kaplan_meier.horizon(table, MIN_AT_RISK)
    return Figures(
        deals=sum(counts.values()),
        outcomes={o: sum(n for (x, _), n in counts.items() if x == o) for o in OUTCOMES},
        distribution=distribution,
        median_touches={o: _median(counts, o) for o in OUTCOMES},
        answered=sum(answered.values()),
        horizon=within,
        not_answered_by_horizon=None if within is None else kaplan_meier.survival(table)[within],
        answers_after=[_answers_after(table, k, within) for k in GIVE_UP_AFTER],
        gave_up=_gave_up(counts),
    )


def _answers_after(table: list[kaplan_meier.AtTouch], k: int, within: int | None) -> AnswersAfter:
    went_past = table[k + 1].at_risk if k + 1 < len(table) else 0
    touches = f"{k} touch{'es' if k > 1 else ''}"
    if within is None or went_past < MIN_AT_RISK:
        words = f"cannot say: {went_past} deals were followed up past {touches} ({MIN_AT_RISK} needed)"
        return AnswersAfter(after=k, went_past=went_past, share=None, interval=None, words=words)
    found = kaplan_meier.answers_after(table, k, within)
    if found is None:
        words = f"cannot say: no answer came within {within} touches"
        return AnswersAfter(after=k, went_past=went_past, share=None, interval=None, words=words)
    low, high = found.interval
    words = f"{found.value:.0%} ({low:.0%}-{high:.0%}) of the answers within {within} touches come after {touches}"
    return AnswersAfter(after=k, went_past=went_past, share=found.value, interval=found.interval, words=words)


def _gave_up(counts: Counter[tuple[str, int]]) -> GaveUp:
    keys = [str(k) for k in range(PERSISTENT)] + [f"{PERSISTENT}+"]
    after = dict.fromkeys(keys, 0)
    for (outcome, touches), n in counts.items():
        if outcome == "lost":
            after[keys[min(touches, PERSISTENT)]] += n
    total = sum(after.values())
    return GaveUp(deals=total, after=after, shares={k: n / total if total else None for k, n in after.items()})


def _median(counts: Counter[tuple[str, int]], outcome: str) -> float | None:
    """The median number of touches of the outcome's deals (the mean of the two middle ones when
    their number is even), read off the counts without listing every deal."""
    ordered = sorted((t, n) for (o, t), n in counts.items() if o == outcome and n)
    total = sum(n for _, n in ordered)
    if not total:
        return None

    def nth(k: int) -> int:  # the k-th smallest, from 0
        for t, n in ordered:
            if k < n:
                return t
            k -= n
        raise IndexError(k)

    return (nth((total - 1) // 2) + nth(total // 2)) / 2
