"""A/B comparison of two process versions (or two processes): per stage, conversion and time in
stage side by side, with intervals, significance tests and a verdict in plain words."""

from __future__ import annotations

import asyncpg
from pydantic import BaseModel

from definitions.loader import PinnedDefinition
from store.metrics import Filters, Metrics, compute
from store.stats import deals_needed_each, fisher_exact, mann_whitney, wilson

MIN_DEALS = 30  # below this many deals entering a stage on either side, no verdict is offered
ALPHA = 0.05

_FIRST_VISITS = """
SELECT v.stage, array_agg(extract(epoch FROM v.exit_at - v.entered_at)) AS seconds
FROM stage_visits v JOIN deals d USING (deal_id)
WHERE d.process = $1 AND (d.start_version = $2 OR d.version = $2) AND ($3::text IS NULL OR d.experiment = $3)
  AND v.visit_no = 1 AND v.exit_at IS NOT NULL
GROUP BY v.stage
"""


class Side(BaseModel):
    entered: int
    converted: int
    conversion: float | None
    interval: tuple[float, float] | None
    median_seconds: float | None


class StageComparison(BaseModel):
    stage: str
    a: Side
    b: Side
    conversion_p: float | None
    duration_p: float | None
    verdict: str


class Comparison(BaseModel):
    a: str
    b: str
    deals: tuple[int, int]
    win_rate: tuple[float | None, float | None]
    win_rate_p: float | None
    stages: list[StageComparison]
    verdict: str


async def _durations(pool: asyncpg.Pool, name: str, version: str, experiment: str | None) -> dict[str, list[float]]:
    rows = await pool.fetch(_FIRST_VISITS, name, version, experiment)
    return {r["stage"]: [float(x) for x in r["seconds"]] for r in rows}


def _side(entered: int, converted: int, seconds: list[float]) -> Side:
    ordered = sorted(seconds)
    median = None
    if ordered:
        mid = len(ordered) // 2
        median = ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2
    return Side(
        entered=entered,
        converted=converted,
        conversion=converted / entered if entered else None,
        interval=wilson(converted, entered),
        median_seconds=median,
    )


def cannot_tell(what: str, a: float, b: float, p: float) -> str:
    """No verdict, in words that do not read as "the same": what was seen, and what it would take."""
    seen = f"not enough data to tell a difference in {what}: {a:.0%} vs {b:.0%} (Fisher p = {p:.2f})"
    each = deals_needed_each(a, b, ALPHA)
    if each is None:
        return f"{seen}, no difference so far"
    return f"{seen}; about {each:,} deals on each side would tell a difference this size"


def _stage_verdict(stage: str, a: Side, b: Side, p: float | None, labels: tuple[str, str]) -> str:
    if min(a.entered, b.entered) < MIN_DEALS:
        return f"not enough deals yet ({a.entered} and {b.entered} entered; {MIN_DEALS} each needed)"
    if p is None or a.conversion is None or b.conversion is None:
        return "no data"
    if p >= ALPHA:
        return cannot_tell("conversion", a.conversion, b.conversion, p)
    better = labels[1] if b.conversion > a.conversion else labels[0]
    return f"{better} converts better at {stage} ({a.conversion:.0%} vs {b.conversion:.0%}, p = {p:.3f})"


async def compare(
    pool: asyncpg.Pool, a: PinnedDefinition, b: PinnedDefinition, *, experiment: str | None = None
) -> Comparison:
    """`a` against `b`; with `experiment`, only the deals that experiment assigned to each."""
    fa = Filters(process=a.name, version=a.version, experiment=experiment)
    fb = Filters(process=b.name, version=b.version, experiment=experiment)
    ma: Metrics = await compute(pool, a.definition, fa)
    mb: Metrics = await compute(pool, b.definition, fb)
    da = await _durations(pool, a.name, a.version, experiment)
    db = await _durations(pool, b.name, b.version, experiment)
    labels = (a.ref, b.ref)
    stages = []
    b_stages = {s.stage: s for s in mb.stages}
    for sa in ma.stages:
        sb = b_stages.get(sa.stage)
        if sb is None:
            continue
        side_a = _side(sa.entered, sa.converted_any_later, da.get(sa.stage, []))
        side_b = _side(sb.entered, sb.converted_any_later, db.get(sb.stage, []))
        p = None
        if sa.entered and sb.entered:
            p = fisher_exact(
                sa.converted_any_later,
                sa.entered - sa.converted_any_later,
                sb.converted_any_later,
                sb.entered - sb.converted_any_later,
            )
        mw = mann_whitney(da.get(sa.stage, []), db.get(sb.stage, []))
        stages.append(
            StageComparison(
                stage=sa.stage,
                a=side_a,
                b=side_b,
                conversion_p=p,
                duration_p=None if mw is None else mw.p,
                verdict=_stage_verdict(sa.stage, side_a, side_b, p, labels),
            )
        )
    ga, gb = ma.deals, mb.deals
    win_p = None
    if ga.won + ga.lost and gb.won + gb.lost:
        win_p = fisher_exact(ga.won, ga.lost, gb.won, gb.lost)
    closed = (ga.won + ga.lost, gb.won + gb.lost)
    if min(closed) < MIN_DEALS:
        verdict = f"not enough deals yet: {closed[0]} and {closed[1]} closed deals ({MIN_DEALS} each needed)"
    elif win_p is not None and win_p < ALPHA and ga.win_rate is not None and gb.win_rate is not None:
        better = labels[1] if gb.win_rate > ga.win_rate else labels[0]
        verdict = f"{better} wins more often ({ga.win_rate:.0%} vs {gb.win_rate:.0%}, Fisher p = {win_p:.3f})"
    elif win_p is not None and ga.win_rate is not None and gb.win_rate is not None:
        verdict = cannot_tell("win rate", ga.win_rate, gb.win_rate, win_p)
    else:
        verdict = "no data"
    return Comparison(
        a=a.ref,
        b=b.ref,
        deals=(ga.deals, gb.deals),
        win_rate=(ga.win_rate, gb.win_rate),
        win_rate_p=win_p,
        stages=stages,
        verdict=verdict,
    )
