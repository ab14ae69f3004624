"""Time lost at handoffs between teams, from the event log.

Definitions (`tests/test_handoff_metrics.py` checks each against a plain Python computation over
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
  taken up would tell a shift that size (Noether's formula, `stats.pairs_needed`).
"""

from __future__ import annotations

import asyncpg
from pydantic import BaseModel

from store.stats import mann_whitney, pairs_needed

MIN_TAKEN_UP = 10
ALPHA = 0.05
SLOWER = 1.5  # how many times the others' median a stage's must be to be called slow

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


class HandoffFigures(BaseModel):
    """One process, one team of it, or one stage handed into (with its team)."""

    process: str
    team: str | None  # None: the process's row, over all its handoffs
    stage: str | None  # None: the team's (or the process's) row, over all its stages
    handoffs: int
    taken_up: int
    waiting: int
    passed_on: int
    ended: int
    median_seconds: float | None  # time lost until the new owner's first action
    p90_seconds: float | None
    p_value: float | None = None  # one-sided: that a stage's times are longer than the others' of the process
    slow: bool = False
    verdict: str = ""


class HandoffMetrics(BaseModel):
    processes: list[HandoffFigures]
    teams: list[HandoffFigures]
    stages: list[HandoffFigures]

    def slow(self) -> list[HandoffFigures]:
        return [s for s in self.stages if s.slow]


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
    stages = [_judged(s, times, out[0]) for s in out[0]]
    return HandoffMetrics(processes=out[3], teams=out[1], stages=stages)


def _judged(
    stage: HandoffFigures, times: dict[tuple[str, str | None, str | None], list[float]], stages: list[HandoffFigures]
) -> HandoffFigures:
    own = times[(stage.process, stage.team, stage.stage)]
    others = [
        t
        for s in stages
        if s.process == stage.process and (s.team, s.stage) != (stage.team, stage.stage)
        for t in times[(s.process, s.team, s.stage)]
    ]
    if min(len(own), len(others)) < MIN_TAKEN_UP:
        counts = f"{len(own)} here, {len(others)} elsewhere; {MIN_TAKEN_UP} each"
        verdict = f"not enough handoffs taken up to judge ({counts})"
        return stage.model_copy(update={"verdict": verdict})
    test = mann_whitney(own, others)
    assert test is not None  # both sides have times
    compared = sum(1 for s in stages if s.process == stage.process)
    level = ALPHA / compared
    mine, theirs = _median(own), _median(others)
    p = test.p_greater
    medians = f"{_words(mine)} vs {_words(theirs)} median"
    shown = p < level
    slow = shown and mine >= SLOWER * theirs
    if slow:
        verdict = (
            f"slow: handoffs into {stage.stage} ({stage.team}) wait {_words(mine)} for the new owner's first action"
            f" (median) vs {_words(theirs)} at the other handoffs (p = {p:.2g} that they wait longer)"
        )
    elif shown:
        verdict = (
            f"slower, by less than half as long again ({medians}, p = {p:.2g} that they wait longer): not called slow"
        )
    elif mine <= theirs:
        verdict = f"not slower: taken up as soon or sooner ({medians}, p = {p:.2g} that they wait longer)"
    else:
        auc = test.u / (len(own) * len(others))
        total = pairs_needed(auc, len(own) / (len(own) + len(others)), level)
        more = (
            f"; about {round(total * len(own) / (len(own) + len(others))):,} taken up here (with the others in"
            " proportion) would tell a shift this size"
            if total
            else ""
        )
        verdict = (
            f"not enough data to tell whether slower: {medians} (p = {p:.2g} that they wait longer, "
            f"{level:.2g} needed){more}"
        )
    return stage.model_copy(update={"p_value": p, "slow": slow, "verdict": verdict})


def _median(values: list[float]) -> float:
    xs = sorted(values)
    mid = len(xs) // 2
    return xs[mid] if len(xs) % 2 else (xs[mid - 1] + xs[mid]) / 2


def _words(seconds: float) -> str:
    for unit, size in (("d", 86400.0), ("h", 3600.0), ("min", 60.0)):
        if seconds >= size:
            return f"{seconds / size:.1f} {unit}"
    return f"{seconds:.0f} s"
