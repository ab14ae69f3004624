"""The answers' figures from counts, without a database: what analytics/ makes of the rows the store
returns (the store's SQL and the figures together are checked over real events in
tests/application/test_insights.py, test_metrics.py and test_handoff_metrics.py)."""

from __future__ import annotations

import pytest

from analytics.follow_up_persistence import MIN_AT_RISK, tally
from analytics.handoff_verdicts import MIN_TAKEN_UP, HandoffFigures, Times, judged
from analytics.rep_strength import PhaseCount, phase_strength, phases_of
from analytics.significance import fisher_exact, mann_whitney, two_by_two
from analytics.version_comparison import StageCounts, Version, compare
from definitions.loader import load_file
from tests.support import ROOT

SEVEN = ROOT / "definitions" / "processes" / "seven-stage.yaml"


def test_versions_compared_stage_by_stage_and_in_win_rate() -> None:
    a = Version(
        "v1", 100, 40, 40, [StageCounts("qualify", 100, 60), StageCounts("only-a", 50, 10)], {"qualify": [3, 1, 2]}
    )
    b = Version("v2", 100, 60, 20, [StageCounts("qualify", 100, 80)], {"qualify": [4.0, 5.0, 6.0, 7.0]})
    found = compare(a, b)
    [stage] = found.stages  # a stage only one side has is not compared
    assert (stage.stage, stage.a.median_seconds, stage.b.median_seconds) == ("qualify", 2.0, 5.5)
    assert stage.conversion_p == pytest.approx(fisher_exact(60, 40, 80, 20))
    mw = mann_whitney([3, 1, 2], [4.0, 5.0, 6.0, 7.0])
    assert mw is not None and stage.duration_p == pytest.approx(mw.p)
    assert stage.verdict == f"v2 converts better at qualify (60% vs 80%, p = {stage.conversion_p:.3f})"
    assert found.win_rate == (0.5, 0.75) and found.deals == (100, 100)
    assert found.verdict == f"v2 wins more often (50% vs 75%, Fisher p = {found.win_rate_p:.3f})"


def test_too_few_deals_to_compare_are_said() -> None:
    small = Version("v1", 10, 3, 2, [StageCounts("qualify", 10, 5)])
    found = compare(small, small)
    assert found.stages[0].verdict == "not enough deals yet (10 and 10 entered; 30 each needed)"
    assert found.verdict == "not enough deals yet: 5 and 5 closed deals (30 each needed)"
    assert compare(Version("a", 0, 0, 0, []), Version("b", 0, 0, 0, [])).win_rate_p is None


def test_follow_up_figures_from_counts_per_rep() -> None:
    rows = [
        ("rep-1", "reply", 2, 3),
        ("rep-1", "lost", 1, 2),
        ("rep-1", "lost", 7, 1),
        ("rep-2", "won", 5, 1),
        ("rep-2", "open", 0, 4),
    ]
    overall, reps = tally(rows)
    assert overall.deals == 11 and overall.answered == 4
    assert overall.outcomes == {"reply": 3, "won": 1, "lost": 3, "opted_out": 0, "open": 4}
    assert overall.median_touches["reply"] == 2.0 and overall.median_touches["lost"] == 1.0
    assert overall.gave_up.after == {"0": 0, "1": 2, "2": 0, "3": 0, "4": 0, "5+": 1}
    assert overall.gave_up.shares["1"] == pytest.approx(2 / 3)
    # far fewer than MIN_AT_RISK deals: no share of answers after k touches is given
    assert all(x.share is None and x.went_past < MIN_AT_RISK for x in overall.answers_after)
    assert [(r.rep, r.deals) for r in reps] == [("rep-1", 6), ("rep-2", 5)]
    assert tally([])[0].deals == 0 and tally([])[1] == []


def test_phase_strength_from_counts_per_rep() -> None:
    d = load_file(SEVEN).definition
    first = phases_of(d)[0]
    counts = [
        PhaseCount(first, None, 500, 230, 400, 300, 3600.0),
        PhaseCount(first, "rep-b", 250, 60, 200, 150, 1800.0),
        PhaseCount(first, "rep-a", 250, 170, 200, 150, 5400.0),
    ]
    phases, verdicts = phase_strength(d, counts)
    assert [p.phase for p in phases] == phases_of(d) and "after-sales" not in phases_of(d)
    top = phases[0]
    assert (top.entered, top.open, top.converted, top.settled) == (500, 100, 230, 400)
    assert top.conversion == pytest.approx(230 / 400)
    assert [r.rep for r in top.reps] == ["rep-a", "rep-b"]
    a = top.reps[0]
    assert (a.open, a.conversion.rest_successes, a.conversion.rest_n) == (50, 60, 200)
    # two reps: one test, counted once per phase compared (one phase has data)
    assert a.conversion.p == pytest.approx(two_by_two(170, 30, 60, 140).p)
    assert verdicts == [a.conversion.verdict] and verdicts[0].startswith(
        f"rep-a converts better in {first} (85% vs 30%"
    )
    assert all(p.entered == 0 and p.conversion is None for p in phases[1:])


def _stage(team: str, stage: str) -> HandoffFigures:
    return HandoffFigures(
        process="p", team=team, stage=stage, handoffs=0, taken_up=0, waiting=0, passed_on=0, ended=0,
        median_seconds=None, p90_seconds=None,
    )  # fmt: skip


def test_a_stage_whose_handoffs_wait_much_longer_is_slow() -> None:
    slow, quick, thin = _stage("closers", "negotiate"), _stage("openers", "qualify"), _stage("care", "onboard")
    times: Times = {
        ("p", "closers", "negotiate"): [36_000.0 + 60 * i for i in range(20)],
        ("p", "openers", "qualify"): [3_600.0 + 60 * i for i in range(20)],
        ("p", "care", "onboard"): [100.0] * (MIN_TAKEN_UP - 1),
    }
    stages = [slow, quick, thin]
    judged_slow = judged(slow, times, stages)
    assert judged_slow.slow and judged_slow.p_value is not None and judged_slow.p_value < 0.05 / 3
    assert judged_slow.verdict.startswith("slow: handoffs into negotiate (closers) wait 10.2 h")
    judged_quick = judged(quick, times, stages)
    assert not judged_quick.slow and judged_quick.verdict.startswith("not slower: taken up as soon or sooner")
    assert judged(thin, times, stages).verdict == (
        f"not enough handoffs taken up to judge ({MIN_TAKEN_UP - 1} here, 40 elsewhere; {MIN_TAKEN_UP} each)"
    )
