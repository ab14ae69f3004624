"""A/B comparison of two process versions (or two processes): per stage, conversion and time in
stage side by side, with intervals, significance tests and a verdict in plain words; from the
counts and durations `store.compare` reads for each side."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from pydantic import BaseModel

from analytics.sample_size import deals_needed_each
from analytics.significance import fisher_exact, mann_whitney, wilson

MIN_DEALS = 30  # below this many deals entering a stage on either side, no verdict is offered
ALPHA = 0.05


@dataclass(frozen=True)
class StageCounts:
    stage: str
    entered: int
    converted: int  # to any later stage


@dataclass(frozen=True)
class Version:
    """One side of a comparison: its deals, its stages in order, and the seconds of each stage's
    finished first visits."""

    label: str
    deals: int
    won: int
    lost: int
    stages: Sequence[StageCounts]
    durations: Mapping[str, Sequence[float]] = field(default_factory=dict)

    @property
    def win_rate(self) -> float | None:
        return self.won / (self.won + self.lost) if self.won + self.lost else None


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


def _side(entered: int, converted: int, seconds: Sequence[float]) -> Side:
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


def compare(a: Version, b: Version) -> Comparison:
    """`a` against `b`, stage by stage over the stages of `a` that `b` has too, and in win rate."""
    labels = (a.label, b.label)
    stages = []
    b_stages = {s.stage: s for s in b.stages}
    for sa in a.stages:
        sb = b_stages.get(sa.stage)
        if sb is None:
            continue
        da, db = a.durations.get(sa.stage, []), b.durations.get(sb.stage, [])
        side_a, side_b = _side(sa.entered, sa.converted, da), _side(sb.entered, sb.converted, db)
        p = None
        if sa.entered and sb.entered:
            p = fisher_exact(sa.converted, sa.entered - sa.converted, sb.converted, sb.entered - sb.converted)
        mw = mann_whitney(da, db)
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
    win_p = None
    if a.won + a.lost and b.won + b.lost:
        win_p = fisher_exact(a.won, a.lost, b.won, b.lost)
    closed = (a.won + a.lost, b.won + b.lost)
    ra, rb = a.win_rate, b.win_rate
    if min(closed) < MIN_DEALS:
        verdict = f"not enough deals yet: {closed[0]} and {closed[1]} closed deals ({MIN_DEALS} each needed)"
    elif win_p is not None and win_p < ALPHA and ra is not None and rb is not None:
        better = labels[1] if rb > ra else labels[0]
        verdict = f"{better} wins more often ({ra:.0%} vs {rb:.0%}, Fisher p = {win_p:.3f})"
    elif win_p is not None and ra is not None and rb is not None:
        verdict = cannot_tell("win rate", ra, rb, win_p)
    else:
        verdict = "no data"
    return Comparison(
        a=a.label,
        b=b.label,
        deals=(a.deals, b.deals),
        win_rate=(ra, rb),
        win_rate_p=win_p,
        stages=stages,
        verdict=verdict,
    )
