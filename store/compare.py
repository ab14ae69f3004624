"""What an A/B comparison of two process versions (or two processes) reads: each side's metrics
and the seconds of its stages' finished first visits; `analytics.version_comparison` compares them."""

from __future__ import annotations

import asyncpg

from analytics.version_comparison import Comparison, StageCounts, Version
from analytics.version_comparison import compare as compare_versions
from definitions.loader import PinnedDefinition
from store.metrics import Filters, compute

_FIRST_VISITS = """
SELECT v.stage, array_agg(extract(epoch FROM v.exit_at - v.entered_at)) AS seconds
FROM stage_visits v JOIN deals d USING (deal_id)
WHERE d.process = $1 AND (d.start_version = $2 OR d.version = $2) AND ($3::text IS NULL OR d.experiment = $3)
  AND v.visit_no = 1 AND v.exit_at IS NOT NULL
GROUP BY v.stage
"""


async def _durations(pool: asyncpg.Pool, name: str, version: str, experiment: str | None) -> dict[str, list[float]]:
    rows = await pool.fetch(_FIRST_VISITS, name, version, experiment)
    return {r["stage"]: [float(x) for x in r["seconds"]] for r in rows}


async def _version(pool: asyncpg.Pool, pinned: PinnedDefinition, experiment: str | None) -> Version:
    m = await compute(
        pool, pinned.definition, Filters(process=pinned.name, version=pinned.version, experiment=experiment)
    )
    return Version(
        label=pinned.ref,
        deals=m.deals.deals,
        won=m.deals.won,
        lost=m.deals.lost,
        stages=[StageCounts(s.stage, s.entered, s.converted_any_later) for s in m.stages],
        durations=await _durations(pool, pinned.name, pinned.version, experiment),
    )


async def compare(
    pool: asyncpg.Pool, a: PinnedDefinition, b: PinnedDefinition, *, experiment: str | None = None
) -> Comparison:
    """`a` against `b`; with `experiment`, only the deals that experiment assigned to each."""
    return compare_versions(await _version(pool, a, experiment), await _version(pool, b, experiment))
