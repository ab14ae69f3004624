"""The per-stage funnel of a process, computed in SQL from the event log alone.

Definitions used (also in the README):
- entered: deals with at least one StageEntered for the stage;
- completed: deals with a StageCompleted for the stage;
- skipped: deals that jumped over the stage (named in a StageSkipped event's `skipped` list);
- moved back: deals that moved back out of the stage; lost: deals lost while at the stage;
- conversion to next: of the deals that entered the stage, the share that later entered the next
  stage of the definition (for the last pre-sale stage: that were won);
- median time in stage: over every visit that has ended, from StageEntered to the next
  StageEntered, DealWon, DealLost or DealClosed of the same deal (re-entries count as visits).
"""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from definitions.model import ProcessDefinition

_FUNNEL = """
WITH ev AS (
    SELECT deal_id, seq, type, stage, occurred_at, payload
    FROM deal_events
    WHERE process = $1 AND deal_id LIKE $2
),
marks AS (
    SELECT deal_id, seq, type, stage, occurred_at,
           lead(occurred_at) OVER (PARTITION BY deal_id ORDER BY seq) AS left_at
    FROM ev WHERE type IN ('StageEntered', 'DealWon', 'DealLost', 'DealClosed')
),
stages AS (
    SELECT s.stage, n.next_stage, s.pos
    FROM unnest($3::text[]) WITH ORDINALITY AS s(stage, pos)
    JOIN unnest($4::text[]) WITH ORDINALITY AS n(next_stage, pos) USING (pos)
)
SELECT
    st.stage,
    (SELECT count(DISTINCT deal_id) FROM ev WHERE type = 'StageEntered' AND ev.stage = st.stage) AS entered,
    (SELECT count(DISTINCT deal_id) FROM ev WHERE type = 'StageCompleted' AND ev.stage = st.stage) AS completed,
    (SELECT count(DISTINCT deal_id) FROM ev
      WHERE type = 'StageSkipped' AND ev.payload->'skipped' ? st.stage) AS skipped,
    (SELECT count(DISTINCT deal_id) FROM ev WHERE type = 'MovedBack' AND ev.stage = st.stage) AS moved_back,
    (SELECT count(DISTINCT deal_id) FROM ev WHERE type = 'DealLost' AND ev.stage = st.stage) AS lost,
    (SELECT count(DISTINCT e.deal_id) FROM ev e
      WHERE e.type = 'StageEntered' AND e.stage = st.stage
        AND EXISTS (SELECT 1 FROM ev n WHERE n.deal_id = e.deal_id AND n.seq > e.seq
                    AND ((st.next_stage = '' AND n.type = 'DealWon')
                         OR (n.type = 'StageEntered' AND n.stage = st.next_stage)))) AS converted,
    (SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM m.left_at - m.occurred_at))
       FROM marks m WHERE m.type = 'StageEntered' AND m.stage = st.stage AND m.left_at IS NOT NULL) AS median_seconds
FROM stages st
ORDER BY st.pos
"""


@dataclass(frozen=True)
class FunnelRow:
    stage: str
    phase: str
    entered: int
    completed: int
    skipped: int
    moved_back: int
    lost: int
    converted: int
    median_seconds: float | None

    @property
    def conversion(self) -> float | None:
        return self.converted / self.entered if self.entered else None


async def funnel(pool: asyncpg.Pool, d: ProcessDefinition, *, deal_prefix: str = "") -> list[FunnelRow]:
    """The funnel over the pre-sale stages of `d`, for deals whose id starts with `deal_prefix`."""
    stages = d.pre_sale
    nexts = [d.next_stage(s.id) or "" for s in stages]
    like = deal_prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    rows = await pool.fetch(_FUNNEL, d.name, like, [s.id for s in stages], nexts)
    phase = {s.id: s.phase for s in stages}
    return [
        FunnelRow(
            stage=r["stage"],
            phase=phase[r["stage"]],
            entered=r["entered"],
            completed=r["completed"],
            skipped=r["skipped"],
            moved_back=r["moved_back"],
            lost=r["lost"],
            converted=r["converted"],
            median_seconds=r["median_seconds"],
        )
        for r in rows
    ]
