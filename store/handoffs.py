"""Time lost at handoffs between teams, from the event log; each stage judged slow or not by
`analytics.handoff_verdicts`.

Definitions (`tests/application/test_handoff_metrics.py` checks each against a plain Python computation over
the same events):

- A *handoff* is a `HandedOff` event. It is counted at the stage it handed the deal into (the
  event's stage) and for the team it handed the deal to.
- It is *taken up* by the new owner's first action: the first later event of the deal whose actor
  is the new owner, before the deal changes owner again (a later `HandedOff`, or an `Escalated`
  that reassigned it). The *time lost* is from the handoff to that action.
- Otherwise it is *passed on* when the deal changed owner again first; *ended* when the deal
  ended first (lost, closed after the sale, or won with no stage after the sale), by someone
  else's hand; and *waiting* when none of that has happened: the new owner has the deal and has
  not touched it yet.
- Median and p90 of the time lost are over the handoffs taken up, with linear interpolation
  (`percentile_cont`), per process, per team and per stage handed into (with its team).
- The verdict of a stage: its times against those of every other handoff of the process, with
  the Mann-Whitney U test, one-sided (its times longer), since slowness is all it asks. It is
  *slow* when the test says so at 5% (Bonferroni-corrected for the number of stages compared)
  and its median is at least half as long again as the others'; with fewer than `MIN_TAKEN_UP`
  handoffs taken up on either side no verdict is given. Only slowness is named: a stage is never
  called fast merely because another one is slow. The p printed is that one-sided p, so a stage
  whose handoffs are taken up sooner than the others' has a p near 1, never the tiny p of the
  opposite direction. A stage that looks slower but is not shown to be says how many handoffs
  taken up would tell a shift that size (Noether's formula, `sample_size.pairs_needed`).
"""

from __future__ import annotations

import asyncpg

from analytics.handoff_verdicts import HandoffFigures, HandoffMetrics, judged

_HANDOFFS = """
WITH h AS (
    SELECT deal_id, seq, occurred_at, process, stage, payload->>'team' AS team, payload->>'to_owner' AS to_owner
    FROM deal_events
    WHERE type = 'HandedOff' AND ($1::text IS NULL OR process = $1)
),
changed AS (  -- the deal's next change of owner after the handoff, if any
    SELECT h.*, (SELECT min(c.seq) FROM deal_events c
                 WHERE c.deal_id = h.deal_id AND c.seq > h.seq
                   AND (c.type = 'HandedOff' OR (c.type = 'Escalated' AND c.payload->>'reassigned_to' IS NOT NULL))
                ) AS next_change
    FROM h
),
followed AS (
    SELECT c.*,
           (SELECT a.occurred_at FROM deal_events a
            WHERE a.deal_id = c.deal_id AND a.seq > c.seq AND a.actor = c.to_owner
              AND (c.next_change IS NULL OR a.seq < c.next_change)
            ORDER BY a.seq LIMIT 1) AS acted_at,
           EXISTS (SELECT 1 FROM deal_events e
                   WHERE e.deal_id = c.deal_id AND e.seq > c.seq
                     AND (e.type IN ('DealLost', 'DealClosed')
                          OR (e.type = 'DealWon' AND NOT EXISTS (
                                SELECT 1 FROM deal_events s
                                WHERE s.deal_id = e.deal_id AND s.seq > e.seq AND s.type = 'StageEntered')))
                  ) AS ended
    FROM changed c
),
classified AS (
    SELECT process, team, stage, extract(epoch FROM acted_at - occurred_at)::float8 AS seconds,
           acted_at IS NOT NULL AS taken_up,
           acted_at IS NULL AND next_change IS NOT NULL AS passed_on,
           acted_at IS NULL AND next_change IS NULL AND ended AS ended,
           acted_at IS NULL AND next_change IS NULL AND NOT ended AS waiting
    FROM followed
)
SELECT process, team, stage, GROUPING(team, stage) AS level,
       count(*) AS handoffs,
       count(*) FILTER (WHERE taken_up) AS taken_up,
       count(*) FILTER (WHERE waiting) AS waiting,
       count(*) FILTER (WHERE passed_on) AS passed_on,
       count(*) FILTER (WHERE ended) AS ended,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY seconds) AS median,
       percentile_cont(0.9) WITHIN GROUP (ORDER BY seconds) AS p90,
       coalesce(array_agg(seconds) FILTER (WHERE taken_up), '{}') AS times
FROM classified
GROUP BY GROUPING SETS ((process, team, stage), (process, team), (process))
ORDER BY process, team NULLS FIRST, stage NULLS FIRST
"""


async def handoffs(pool: asyncpg.Pool, process: str | None = None) -> HandoffMetrics:
    """The handoff figures of `process` (of every process when None), with each stage's verdict."""
    rows = await pool.fetch(_HANDOFFS, process)
    out: dict[int, list[HandoffFigures]] = {0: [], 1: [], 3: []}
    times: dict[tuple[str, str | None, str | None], list[float]] = {}
    for r in rows:
        figures = HandoffFigures(
            process=r["process"],
            team=r["team"],
            stage=r["stage"],
            handoffs=r["handoffs"],
            taken_up=r["taken_up"],
            waiting=r["waiting"],
            passed_on=r["passed_on"],
            ended=r["ended"],
            median_seconds=r["median"],
            p90_seconds=r["p90"],
        )
        out[r["level"]].append(figures)
        times[(r["process"], r["team"], r["stage"])] = [float(t) for t in r["times"]]
    stages = [judged(s, times, out[0]) for s in out[0]]
    return HandoffMetrics(processes=out[3], teams=out[1], stages=stages)
