"""Follow-up persistence: how many touches deals took before the buyer answered, the deal was won
or it was lost, and how many would have been lost by giving up early.

Seed 004: 44% of sellers give up after one rejection, 22% after two, 14% after three and 12% after
four, while 80% of sales need at least five follow-ups. This answers the same question from the
log: of the deals that did get an answer, how many got it only after the k-th touch?

Definitions (docs/metrics.md repeats them; tests/test_insights.py checks each against a plain
Python computation over the same events):

- The deals counted are those in scope with a follow-up cadence (a CadenceStarted).
- A deal's *outcome* is the first of these after its first CadenceStarted: a BuyerResponded
  `replied` or `meeting_booked` (*reply*), `unsubscribed` or `bounced` (*opted out*), DealWon
  (*won*) or DealLost (*lost*); none yet is *open*.
- *Touches before* it: the TouchSent events logged before the outcome (for an open deal, all of
  them so far).
- *Answered*: outcome reply or won. *Lost by giving up after k touches* (k = 1..4): answered deals
  that took more than k touches, as a share of the answered; *five or more*: those that took at
  least five.
- Per rep: each deal is credited to its owner at the outcome (for an open deal, as of the instant
  looked from), the owner changing by hand-off and reassigning escalation (`store.insights`).
"""

from __future__ import annotations

from collections import Counter, defaultdict

import asyncpg
from pydantic import BaseModel

from definitions.model import ProcessDefinition
from store.insights import Scope, owner_at, scoped, snapshot

OUTCOMES = ("reply", "won", "lost", "opted_out", "open")
GIVE_UP_AFTER = (1, 2, 3, 4)
PERSISTENT = 5


class TouchRow(BaseModel):
    """Deals by outcome that had exactly `touches` touches before it."""

    touches: int
    reply: int
    won: int
    lost: int
    opted_out: int
    open: int


class GiveUp(BaseModel):
    after: int
    deals: int
    share: float | None


class Figures(BaseModel):
    deals: int
    outcomes: dict[str, int]
    distribution: list[TouchRow]
    median_touches: dict[str, float | None]
    answered: int
    five_or_more: int
    share_five_or_more: float | None
    lost_by_giving_up: list[GiveUp]


class RepFigures(Figures):
    rep: str


class Persistence(BaseModel):
    filters: Scope
    overall: Figures
    by_rep: list[RepFigures] | None


_PER_DEAL = """
CREATE TEMP TABLE i_follow_ups ON COMMIT DROP AS
WITH ev AS (
    -- through the partial index deal_events_follow_up: only a buyer's answer needs its row read
    SELECT e.deal_id, e.seq, e.type, NULL AS kind
    FROM deal_events e
    WHERE e.process = $1 AND e.type IN ('CadenceStarted', 'TouchSent', 'DealWon', 'DealLost')
      AND e.occurred_at <= coalesce($2::timestamptz, 'infinity') /*scope*/
    UNION ALL
    SELECT e.deal_id, e.seq, e.type, e.payload->>'kind'
    FROM deal_events e
    WHERE e.process = $1 AND e.type = 'BuyerResponded'
      AND e.occurred_at <= coalesce($2::timestamptz, 'infinity') /*scope*/
),
cadenced AS (
    SELECT *, min(seq) FILTER (WHERE type = 'CadenceStarted') OVER (PARTITION BY deal_id) AS first_cadence
    FROM ev
),
ended AS (
    SELECT *, min(seq) FILTER (WHERE type IN ('BuyerResponded', 'DealWon', 'DealLost') AND seq > first_cadence)
                  OVER (PARTITION BY deal_id) AS end_seq
    FROM cadenced WHERE first_cadence IS NOT NULL
)
SELECT deal_id, end_seq,
       coalesce(max(CASE WHEN type = 'DealWon' THEN 'won' WHEN type = 'DealLost' THEN 'lost'
                         WHEN kind IN ('replied', 'meeting_booked') THEN 'reply' ELSE 'opted_out' END)
                    FILTER (WHERE seq = end_seq), 'open') AS outcome,
       count(*) FILTER (WHERE type = 'TouchSent' AND seq < coalesce(end_seq, 2147483647)) AS touches
FROM ended
GROUP BY deal_id, end_seq
"""

_COUNTS = f"""
WITH credited AS ({owner_at("i_follow_ups", "end_seq", ("deal_id",))})
SELECT rep, outcome, touches, count(*) AS deals FROM credited GROUP BY rep, outcome, touches
"""


async def compute(pool: asyncpg.Pool, d: ProcessDefinition, scope: Scope, *, by_rep: bool = False) -> Persistence:
    async with snapshot(pool, d, scope) as conn:
        await conn.execute(scoped(_PER_DEAL, scope), scope.process, scope.as_of)
        await conn.execute("ANALYZE i_follow_ups")  # the owner join is planned on true row counts
        rows = await conn.fetch(_COUNTS)
    return assemble(scope, [(r["rep"], r["outcome"], r["touches"], r["deals"]) for r in rows], by_rep=by_rep)


def assemble(scope: Scope, rows: list[tuple[str, str, int, int]], *, by_rep: bool) -> Persistence:
    """The figures from (rep, outcome, touches before it, deals) counts."""
    overall: Counter[tuple[str, int]] = Counter()
    per_rep: dict[str, Counter[tuple[str, int]]] = defaultdict(Counter)
    for rep, outcome, touches, deals in rows:
        overall[(outcome, touches)] += deals
        per_rep[rep][(outcome, touches)] += deals
    reps = [RepFigures(rep=rep, **figures(per_rep[rep]).model_dump()) for rep in sorted(per_rep)]
    return Persistence(filters=scope, overall=figures(overall), by_rep=reps if by_rep else None)


def figures(counts: Counter[tuple[str, int]]) -> Figures:
    def deals(outcome: str, touches: int) -> int:
        return counts.get((outcome, touches), 0)

    most = max((t for _, t in counts), default=-1)
    distribution = [
        TouchRow(touches=t, **{o: deals(o, t) for o in OUTCOMES})
        for t in range(most + 1)
        if any(deals(o, t) for o in OUTCOMES)
    ]
    answered = [(t, n) for (o, t), n in counts.items() if o in ("reply", "won")]
    total_answered = sum(n for _, n in answered)
    five = sum(n for t, n in answered if t >= PERSISTENT)
    return Figures(
        deals=sum(counts.values()),
        outcomes={o: sum(n for (x, _), n in counts.items() if x == o) for o in OUTCOMES},
        distribution=distribution,
        median_touches={o: _median(counts, o) for o in OUTCOMES},
        answered=total_answered,
        five_or_more=five,
        share_five_or_more=five / total_answered if total_answered else None,
        lost_by_giving_up=[
            GiveUp(
                after=k,
                deals=(late := sum(n for t, n in answered if t > k)),
                share=late / total_answered if total_answered else None,
            )
            for k in GIVE_UP_AFTER
        ],
    )


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
