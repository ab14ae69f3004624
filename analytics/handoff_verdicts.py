"""Whether handoffs into a stage wait longer for the new owner than the process's other handoffs:
the verdict of each stage, from the times the store reads (`store/handoffs.py` defines a handoff,
its taking up and its time lost; docs/metrics.md the verdict's words).

The stage's times are tested against every other handoff's of the process with the Mann-Whitney
U test, one-sided (its times longer), since slowness is all it asks; *slow* when the test says so
at `ALPHA` over the number of stages compared (Bonferroni) and its median is at least `SLOWER`
times the others'; no verdict with fewer than `MIN_TAKEN_UP` handoffs taken up on either side.
A stage that looks slower but is not shown to be says how many handoffs taken up would tell a
shift that size (Noether's formula, `sample_size.pairs_needed`).
"""

from __future__ import annotations

from pydantic import BaseModel

from analytics.sample_size import pairs_needed
from analytics.significance import mann_whitney

MIN_TAKEN_UP = 10
ALPHA = 0.05
SLOWER = 1.5  # how many times the others' median a stage's must be to be called slow

Times = dict[tuple[str, str | None, str | None], list[float]]  # (process, team, stage): seconds lost


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


def judged(stage: HandoffFigures, times: Times, stages: list[HandoffFigures]) -> HandoffFigures:
    """`stage` with its verdict, its times against those of the other `stages` of its process."""
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
