"""The counts behind follow-up persistence (`analytics.follow_up_persistence` turns them into
figures): per rep, outcome and number of touches before it, the deals of the scope.

Definitions (docs/metrics.md repeats them; tests/application/test_insights.py checks each against a plain
Python computation over the same events):

- The deals counted are those in scope with a follow-up cadence (a CadenceStarted).
- A deal's *outcome* is the first of these after its first CadenceStarted: a BuyerResponded
  `replied` or `meeting_booked` (*reply*), `unsubscribed` or `bounced` (*opted out*), DealWon
  (*won*) or DealLost (*lost*); none yet is *open*.
- *Touches before* it: the TouchSent events logged before the outcome (for an open deal, all of
  them so far).
- Per rep: each deal is credited to its owner at the outcome (for an open deal, as of the instant
  looked from), the owner changing by hand-off and reassigning escalation (`store.insights`).
"""

from __future__ import annotations

import asyncpg
from pydantic import BaseModel

from analytics.follow_up_persistence import MIN_AT_RISK, Figures, RepFigures, tally
from definitions.model import ProcessDefinition
from store.insights import Scope, owner_at, scoped, snapshot


class Persistence(BaseModel):
    filters: Scope
    min_at_risk: int
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
    """The answer from (rep, outcome, touches before it, deals) counts."""
    overall, reps = tally(rows)
    return Persistence(filters=scope, min_at_risk=MIN_AT_RISK, overall=overall, by_rep=reps if by_rep else None)
