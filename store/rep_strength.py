"""Phase strength per rep: who converts deals out of which phase (seed 000: door-openers and
closers), each rep against the rest of the team, with verdicts that are rarely wrong.

Definitions (docs/metrics.md repeats them; tests/application/test_insights.py checks each against a plain
Python computation over the same events):

- A deal *entered* a phase when it entered any of its pre-sale stages (post-sale phases have no
  conversion and are left out). It *converted* out of it when, after entering it, it entered a
  stage of a later phase or was won (as `store.metrics` counts a phase's conversion).
- Its fate in the phase is *settled* once it converted or the deal ended (won or lost); a deal
  still open that has not converted is *open* and left out of the conversion, which is
  converted / settled: otherwise reps with younger deals would look worse.
- The phase is *credited* to the owner of the deal when it last left the phase (the event that
  ended its last visit of the phase's stages: entering another phase's stage, or being won,
  lost or closed), or, while it is still in the phase, to its owner as of the instant looked
  from. Owners change by hand-off and by reassigning escalation (`store.insights`), so a deal
  handed from a door-opener to a closer credits get-in to the first and close to the second.
- Time in phase: a deal's visits of the phase's stages added up, for deals with none still open,
  as in `store.metrics`; its median per rep is shown, not judged: a slow phase is not a worse one.
- Each rep's conversion is compared with the rest of the team in each phase
  (`analytics.rep_strength`, `analytics.verdicts`).
"""

from __future__ import annotations

from typing import Any

import asyncpg
from pydantic import BaseModel

from analytics.rep_strength import PhaseCount, PhaseStrength, phase_strength, phases_of
from analytics.verdicts import ALPHA, MIN_DEALS
from definitions.model import ProcessDefinition
from store.insights import Scope, owner_at, scoped, snapshot


class RepStrength(BaseModel):
    filters: Scope
    alpha: float
    min_deals: int
    phases: list[PhaseStrength]
    verdicts: list[str]


def per_deal_sql(d: ProcessDefinition) -> str:
    """One row per deal and phase it entered, from one hash aggregate per deal over its visits.

    The phases are few and known from the definition, so each phase's figures are aggregates
    filtered by phase (written out here, with the stage positions as literals) rather than a
    window over each deal's visits in order, which needs every visit sorted first."""
    phases = phases_of(d)
    last = [max(d.index(s.id) + 1 for s in d.stages if s.phase == p and not s.post_sale) for p in phases]

    def per_phase(template: str) -> str:
        return "ARRAY[" + ", ".join(template.format(k=k, last=last[k - 1]) for k in range(1, len(phases) + 1)) + "]"

    return f"""
    CREATE TEMP TABLE i_phase_deals ON COMMIT DROP AS
    WITH seen AS (
        SELECT v.deal_id, v.seq, st.pos, CASE WHEN st.post_sale THEN 0 ELSE p.k END AS k,
               CASE WHEN v.exit_at <= a.t THEN v.exit_seq END AS exit_seq,
               CASE WHEN v.exit_at <= a.t THEN v.exit_type END AS exit_type,
               CASE WHEN v.exit_at <= a.t THEN extract(epoch FROM v.exit_at - v.entered_at) END AS seconds
        FROM stage_visits v
        JOIN i_stages st ON st.stage = v.stage
        LEFT JOIN unnest($3::text[]) WITH ORDINALITY AS p(phase, k) ON p.phase = st.phase,
        (SELECT coalesce($2::timestamptz, 'infinity') AS t) a
        WHERE v.process = $1 AND v.entered_at <= a.t /*scope*/
    ),
    deal AS (
        SELECT deal_id,
               bool_or(exit_type = 'won') AS won,
               bool_or(exit_type IN ('won', 'lost')) AS ended,
               {per_phase("min(seq) FILTER (WHERE k = {k})")} AS first_seq,
               -- the last entry of a stage beyond the phase: a conversion if after the first entry
               {per_phase("max(seq) FILTER (WHERE pos > {last})")} AS beyond_seq,
               -- the exit of the last visit of the phase (0: still open), seq and exit_seq in one
               -- bigint so that the largest seq carries its exit through max()
               {per_phase("max((seq::bigint << 32) | coalesce(exit_seq, 0)) FILTER (WHERE k = {k})")} AS last_exit,
               {per_phase("sum(seconds) FILTER (WHERE k = {k})")} AS seconds,
               {per_phase("bool_and(seconds IS NOT NULL) FILTER (WHERE k = {k})")} AS timed
        FROM seen GROUP BY deal_id
    )
    SELECT d.deal_id, p.phase,
           d.won OR coalesce(d.beyond_seq[p.k] > d.first_seq[p.k], false) AS converted,
           d.ended,
           nullif(d.last_exit[p.k] & 4294967295, 0)::int AS left_seq,
           d.seconds[p.k] AS seconds,
           d.timed[p.k] AS timed
    FROM deal d, unnest($3::text[]) WITH ORDINALITY AS p(phase, k)
    WHERE d.first_seq[p.k] IS NOT NULL
    """


_PER_REP = f"""
WITH credited AS MATERIALIZED ({owner_at("i_phase_deals", "left_seq", ("deal_id", "phase"))})
SELECT phase, rep, GROUPING(rep) = 1 AS team,
       count(*) AS entered,
       count(*) FILTER (WHERE converted) AS converted,
       count(*) FILTER (WHERE converted OR ended) AS settled,
       count(*) FILTER (WHERE timed) AS timed,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY seconds) FILTER (WHERE timed) AS median
FROM credited
GROUP BY GROUPING SETS ((phase, rep), (phase))
"""


async def compute(pool: asyncpg.Pool, d: ProcessDefinition, scope: Scope) -> RepStrength:
    async with snapshot(pool, d, scope) as conn:
        await conn.execute(scoped(per_deal_sql(d), scope, "v"), scope.process, scope.as_of, phases_of(d))
        await conn.execute("ANALYZE i_phase_deals")  # the owner join is planned on true row counts
        rows = await conn.fetch(_PER_REP)
    return assemble(d, scope, rows)


def assemble(d: ProcessDefinition, scope: Scope, rows: list[Any]) -> RepStrength:
    """The answer from the rows of `_PER_REP` (the team's row of a phase has `team` set)."""
    counts = [
        PhaseCount(
            phase=r["phase"],
            rep=None if r["team"] else r["rep"],
            entered=r["entered"],
            converted=r["converted"],
            settled=r["settled"],
            timed=r["timed"],
            median_seconds=r["median"],
        )
        for r in rows
    ]
    phases, verdicts = phase_strength(d, counts)
    return RepStrength(filters=scope, alpha=ALPHA, min_deals=MIN_DEALS, phases=phases, verdicts=verdicts)
