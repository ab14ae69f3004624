"""Every metric checked against a straightforward Python computation over the same events.

Deals are generated with the pure decision functions (so their events are exactly what the
workflow would record), with skips, back-moves, re-entries, losses, wins, SLA breaches and
follow-up touches, appended to the real event log, and measured both ways.
"""

from __future__ import annotations

import random
import statistics
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import asyncpg
import pytest

from bench.generate import T0, simulate
from definitions.loader import PinnedDefinition
from definitions.model import ProcessDefinition
from domain.activity_io import AppendEvents, DealSnapshot
from domain.events import DealEvent, DealStarted, MigratedToVersion
from domain.state import fold
from store import event_log
from store.metrics import Durations, Filters, Metrics, compute
from tests.support.cli import dealflow

# --- the independent computation --------------------------------------------------------------


def pct(values: list[float], q: float) -> float | None:
    """Linear interpolation between closest ranks, as PostgreSQL's percentile_cont."""
    if not values:
        return None
    xs = sorted(values)
    pos = q * (len(xs) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def durations(values: list[float]) -> Durations:
    return Durations(
        n=len(values), median=pct(values, 0.5), p90=pct(values, 0.9), mean=statistics.fmean(values) if values else None
    )


def visits(events: list[DealEvent]) -> list[tuple[str, int, float | None]]:
    """(stage, seq, seconds or None if still open) for every StageEntered of one deal."""
    marks = [e for e in events if e.type in {"StageEntered", "DealWon", "DealLost", "DealClosed"}]
    out = []
    for a, b in zip(marks, [*marks[1:], None], strict=True):
        if a.type == "StageEntered":
            assert a.stage is not None
            out.append((a.stage, a.seq, None if b is None else (b.at - a.at).total_seconds()))
    return out


def expected(d: ProcessDefinition, deals: Iterable[list[DealEvent]]) -> dict[str, object]:
    ids = [s.id for s in d.stages]
    pos = {s: i for i, s in enumerate(ids)}
    st: dict[str, Counter[str]] = defaultdict(Counter)
    reasons: dict[str, Counter[str]] = defaultdict(Counter)
    first: dict[str, list[float]] = defaultdict(list)
    cumulative: dict[str, list[float]] = defaultdict(list)
    phase_n: dict[str, Counter[str]] = defaultdict(Counter)
    phase_t: dict[str, list[float]] = defaultdict(list)
    won = lost = open_ = 0
    cycle: list[float] = []
    pipeline = 0.0
    touches_won: list[int] = []
    with_cadence = five = 0
    for events in deals:
        started = events[0]
        kinds = {e.type for e in events}
        per = {
            k: {e.stage for e in events if e.type == k}
            for k in ("StageEntered", "StageCompleted", "MovedBack", "DealLost")
        }
        for k, name in (
            ("StageEntered", "entered"),
            ("StageCompleted", "completed"),
            ("MovedBack", "moved_back"),
            ("DealLost", "lost"),
        ):
            for s in per[k]:
                st[str(s)][name] += 1
        for s in {x for e in events if e.type == "StageSkipped" for x in e.skipped}:
            st[s]["skipped"] += 1
        for e in events:
            if e.type == "DealLost":
                reasons[str(e.stage)][e.reason] += 1
            if e.type in {"SlaBreached", "ReminderSent", "Escalated"}:
                st[str(e.stage)][e.type] += 1
        for s in ids:
            nxt = d.next_stage(s)
            if not d.stage(s).post_sale and nxt is None:
                strict = any(e.type == "DealWon" and e.stage == s for e in events)
            else:
                strict = any(e.type == "StageEntered" and e.stage == nxt and e.via == "next" for e in events)
            if strict:
                st[s]["strict"] += 1
        vs = visits(events)
        for s in {v[0] for v in vs}:
            entries = [v for v in vs if v[0] == s]
            if any(
                e.seq > v[1] and ((e.type == "StageEntered" and pos[str(e.stage)] > pos[s]) or e.type == "DealWon")
                for v in entries
                for e in events
            ):
                st[s]["later"] += 1
            if entries[0][2] is not None:
                first[s].append(entries[0][2])
            if all(v[2] is not None for v in entries):
                cumulative[s].append(sum(v[2] for v in entries if v[2] is not None))
        for phase in dict.fromkeys(x.phase for x in d.stages):
            in_phase = [v for v in vs if d.stage(v[0]).phase == phase]
            if not in_phase:
                continue
            phase_n[phase]["entered"] += 1
            last = max(pos[s.id] for s in d.stages if s.phase == phase)
            if any(
                e.seq > v[1] and ((e.type == "StageEntered" and pos[str(e.stage)] > last) or e.type == "DealWon")
                for v in in_phase
                for e in events
            ):
                phase_n[phase]["converted"] += 1
            if any(e.type == "DealLost" and d.stage(str(e.stage)).phase == phase for e in events):
                phase_n[phase]["lost"] += 1
            if all(v[2] is not None for v in in_phase):
                phase_t[phase].append(sum(v[2] for v in in_phase if v[2] is not None))
        closing = next((e for e in events if e.type in {"DealWon", "DealLost"}), None)
        touches = sum(e.type == "TouchSent" for e in events)
        if closing is None:
            open_ += 1
            current = [e for e in events if e.type == "StageEntered"][-1].stage
            pipeline += (started.value or 0) * d.stage(str(current)).probability  # type: ignore[union-attr]
        else:
            cycle.append((closing.at - started.at).total_seconds())
            if closing.type == "DealWon":
                won += 1
                touches_won.append(touches)
            else:
                lost += 1
        if "CadenceStarted" in kinds:
            with_cadence += 1
            five += touches >= 5
    return {
        "stages": {s: (st[s], dict(reasons[s]), durations(first[s]), durations(cumulative[s])) for s in ids},
        "phases": {p: (phase_n[p], durations(phase_t[p])) for p in phase_n},
        "deals": (
            won,
            lost,
            open_,
            durations(cycle),
            pipeline,
            statistics.fmean(touches_won) if touches_won else None,
            with_cadence,
            five,
        ),
    }


def close(a: float | None, b: float | None) -> bool:
    return (a is None and b is None) or (a is not None and b is not None and abs(a - b) <= 1e-6 * max(1, abs(b)))


def assert_matches(got: Metrics, want: dict[str, object], d: ProcessDefinition) -> None:
    stages: dict[str, tuple[Counter[str], dict[str, int], Durations, Durations]] = want["stages"]  # type: ignore[assignment]
    assert [m.stage for m in got.stages] == list(stages)  # every stage, in the definition's order
    for m in got.stages:
        c, reasons, first, cumulative = stages[m.stage]
        assert (m.entered, m.completed, m.skipped, m.moved_back, m.lost) == (
            c["entered"],
            c["completed"],
            c["skipped"],
            c["moved_back"],
            c["lost"],
        ), m.stage
        assert m.lost_reasons == reasons, m.stage
        assert (m.converted_strict, m.converted_any_later) == (c["strict"], c["later"]), m.stage
        assert (m.sla_breaches, m.reminders, m.escalations) == (c["SlaBreached"], c["ReminderSent"], c["Escalated"])
        for mine, theirs in ((m.first_entry, first), (m.cumulative, cumulative)):
            assert mine.n == theirs.n, m.stage
            assert close(mine.median, theirs.median) and close(mine.p90, theirs.p90) and close(mine.mean, theirs.mean)
    phases: dict[str, tuple[Counter[str], Durations]] = want["phases"]  # type: ignore[assignment]
    # every phase some deal entered, in the definition's order
    assert [p.phase for p in got.phases] == [p for p in dict.fromkeys(s.phase for s in d.stages) if p in phases]
    for p in got.phases:
        c, t = phases.get(p.phase, (Counter(), durations([])))
        assert (p.entered, p.lost, p.converted) == (c["entered"], c["lost"], c["converted"]), p.phase
        assert (
            p.time_in_phase.n == t.n and close(p.time_in_phase.median, t.median) and close(p.time_in_phase.mean, t.mean)
        )
    deals_want = cast(tuple[int, int, int, Durations, float, float | None, int, int], want["deals"])
    won, lost, open_, cycle, pipeline, touches_won, with_cadence, five = deals_want
    g = got.deals
    assert (g.won, g.lost, g.open, g.deals) == (won, lost, open_, won + lost + open_)
    assert close(g.win_rate, won / (won + lost) if won + lost else None)
    assert g.cycle_time.n == cycle.n and close(g.cycle_time.median, cycle.median) and close(g.cycle_time.p90, cycle.p90)
    assert close(g.weighted_pipeline, pipeline) and close(g.touches_per_won_deal, touches_won)
    assert g.deals_with_cadence == with_cadence
    assert close(g.share_five_or_more_touches, five / with_cadence if with_cadence else None)


@pytest.fixture(scope="module")
async def generated(
    pool: asyncpg.Pool, deployed: dict[str, PinnedDefinition]
) -> tuple[ProcessDefinition, list[list[DealEvent]]]:
    base = deployed["seven-stage"].definition
    d = base.model_copy(update={"name": f"metrics-{uuid.uuid4().hex[:6]}"})
    for version in ("v1", "v2"):  # so that the aggregates know the deals' stage layout
        await _deploy(pool, d, version)
    rng = random.Random(20261122)
    deals = [simulate(d, "v1", f"{d.name}-{i:04d}", rng) for i in range(2500)]
    for n, events in enumerate(deals):
        await event_log.append(
            pool,
            AppendEvents(
                deal_id=events[0].deal_id,  # type: ignore[union-attr]
                events=events,
                snapshot=DealSnapshot.of(fold(events)),
            ),
        )
        if n % 8 == 0 and fold(events).status == "open":  # some open deals move to v2 later
            events.append(_migration(d, events))
            await event_log.append(
                pool,
                AppendEvents(
                    deal_id=events[0].deal_id,  # type: ignore[union-attr]
                    events=events[-1:],
                    snapshot=DealSnapshot.of(fold(events)),
                ),
            )
    return d, deals


def _migration(d: ProcessDefinition, events: list[DealEvent]) -> DealEvent:
    stage = fold(events).stage
    return MigratedToVersion(
        seq=events[-1].seq + 1,
        at=events[-1].at + timedelta(hours=1),
        actor="ops",
        stage=stage,
        from_version="v1",
        to_version="v2",
        content_hash="v2" * 8,
        from_stage=stage,
        stage_map={s.id: s.id for s in d.stages},
    )


async def _deploy(pool: asyncpg.Pool, d: ProcessDefinition, version: str) -> None:
    await pool.execute(
        "INSERT INTO definitions (name, version, content_hash, body, deployed_by) VALUES ($1, $2, $3, $4::jsonb, 't')",
        d.name,
        version,
        version * 8,
        d.model_dump_json(),
    )


def _started(events: list[DealEvent]) -> datetime:
    return events[0].at


async def test_metrics_match_an_independent_computation(
    pool: asyncpg.Pool, generated: tuple[ProcessDefinition, list[list[DealEvent]]]
) -> None:
    d, deals = generated
    kinds = Counter(e.type for events in deals for e in events)
    assert kinds["StageSkipped"] > 100 and kinds["MovedBack"] > 100 and kinds["DealLost"] > 100
    assert kinds["DealWon"] > 50 and kinds["SlaBreached"] > 50 and kinds["TouchSent"] > 500
    got = await compute(pool, d, Filters(process=d.name))
    assert_matches(got, expected(d, deals), d)


@pytest.mark.parametrize("which", ["owner", "window", "as_of"])
async def test_filtered_metrics_match(
    pool: asyncpg.Pool, generated: tuple[ProcessDefinition, list[list[DealEvent]]], which: str
) -> None:
    d, deals = generated
    mid = T0 + timedelta(days=30)
    if which == "owner":
        filters = Filters(process=d.name, owner="bo", version="v1")
        subset = [ev for ev in deals if ev[0].owner == "bo"]  # type: ignore[union-attr]
    elif which == "window":
        filters = Filters(process=d.name, since=T0 + timedelta(days=10), until=mid)
        subset = [ev for ev in deals if T0 + timedelta(days=10) <= _started(ev) < mid]
    else:
        filters = Filters(process=d.name, as_of=mid)
        subset = [[e for e in ev if e.at <= mid] for ev in deals if _started(ev) <= mid]
    assert 0 < len(subset) < len(deals), "the filter keeps some deals and leaves out others"
    got = await compute(pool, d, filters)
    assert_matches(got, expected(d, subset), d)  # got.deals.deals == len(subset) among the rest


def _kept(deals: list[list[DealEvent]], f: Filters) -> list[list[DealEvent]]:
    """The deal set of the filters, each deal's events as they stood at `as_of`."""
    out = []
    for events in deals:
        start = events[0]
        assert isinstance(start, DealStarted)
        version = events[-1].to_version if isinstance(events[-1], MigratedToVersion) else start.version
        if (
            (f.owner is not None and start.owner != f.owner)
            or (f.version is not None and f.version not in (start.version, version))
            or (f.since is not None and start.at < f.since)
            or (f.until is not None and start.at >= f.until)
            or (f.as_of is not None and start.at > f.as_of)
        ):
            continue
        out.append([e for e in events if f.as_of is None or e.at <= f.as_of])
    return out


MIDNIGHT = datetime(2026, 1, 5, tzinfo=UTC)  # T0 is 08:00 UTC that day; the aggregates' days are UTC days
CUTS: dict[str, dict[str, Any]] = {
    "within one day": dict(since=T0 + timedelta(days=3, hours=5, minutes=37), until=T0 + timedelta(days=3, hours=11)),
    "whole days": dict(since=MIDNIGHT + timedelta(days=5), until=MIDNIGHT + timedelta(days=40)),
    "since alone": dict(since=T0 + timedelta(days=44, hours=1)),
    "until alone": dict(until=T0 + timedelta(days=7, minutes=30)),
    "as of midnight": dict(as_of=MIDNIGHT + timedelta(days=12)),
    "as of mid-day": dict(as_of=T0 + timedelta(days=25, hours=9, minutes=23, seconds=11.5)),
    "as of a day after the window": dict(
        since=T0 + timedelta(days=6, hours=2), until=T0 + timedelta(days=9, hours=22), as_of=T0 + timedelta(days=10)
    ),
    "owner, window and instant": dict(
        owner="ann",
        since=T0 + timedelta(days=2, hours=3),
        until=T0 + timedelta(days=33, hours=21),
        as_of=T0 + timedelta(days=30, hours=6),
    ),
    "migrated to a version, as of an instant": dict(version="v2", as_of=T0 + timedelta(days=41, hours=2)),
}


@pytest.mark.parametrize("cut", list(CUTS))
async def test_windows_and_instants_through_the_middle_of_days_match(
    pool: asyncpg.Pool, generated: tuple[ProcessDefinition, list[list[DealEvent]]], cut: str
) -> None:
    """The aggregates are kept by UTC day; the parts of days a filter cuts come from the projections."""
    d, deals = generated
    filters = Filters(process=d.name, **CUTS[cut])
    subset = _kept(deals, filters)
    assert 0 < len(subset) < len(deals), "the filter keeps some deals and leaves out others"
    assert_matches(await compute(pool, d, filters), expected(d, subset), d)


async def test_a_definition_of_another_layout_is_computed_from_the_projections(
    pool: asyncpg.Pool, generated: tuple[ProcessDefinition, list[list[DealEvent]]]
) -> None:
    """The aggregates hold figures by the stage order and phases of the deals' versions; asked
    about a definition that groups the stages otherwise, every deal is computed as it was before."""
    d, deals = generated
    regrouped = [s.model_copy(update={"phase": "get-in"}) if s.id == d.stages[2].id else s for s in d.stages]
    other = d.model_copy(update={"stages": regrouped})
    assert_matches(await compute(pool, other, Filters(process=d.name)), expected(other, deals), other)
    instant = T0 + timedelta(days=20, hours=5)
    filters = Filters(process=d.name, as_of=instant)
    assert_matches(await compute(pool, other, filters), expected(other, _kept(deals, filters)), other)


async def test_a_retried_append_counts_nothing_twice(
    pool: asyncpg.Pool, generated: tuple[ProcessDefinition, list[list[DealEvent]]]
) -> None:
    d, deals = generated
    every = [Filters(process=d.name), Filters(process=d.name, **CUTS["owner, window and instant"])]
    before = [await compute(pool, d, f) for f in every]
    for events in deals[:200:10]:
        batch = AppendEvents(
            deal_id=events[0].deal_id,  # type: ignore[union-attr]
            events=events[-3:],
            snapshot=DealSnapshot.of(fold(events)),
        )
        assert await event_log.append(pool, batch) == 0
    assert [await compute(pool, d, f) for f in every] == before
    assert_matches(before[0], expected(d, deals), d)


# --- the CLI: metrics, compare, report ------------------------------------------------------


@dataclass
class TwoVersions:
    definition: ProcessDefinition
    outcomes: dict[str, Counter[str]]  # per version: how many deals the fixture logged won, lost, open

    @property
    def name(self) -> str:
        return self.definition.name

    def win_rate(self, version: str) -> float:
        o = self.outcomes[version]
        return o["won"] / (o["won"] + o["lost"])


@pytest.fixture(scope="module")
async def two_versions(pool: asyncpg.Pool, deployed: dict[str, PinnedDefinition]) -> TwoVersions:
    """One process with two deployed versions and deals on each (v2 loses less)."""
    base = deployed["three-phase"].definition
    d = base.model_copy(update={"name": f"ab-{uuid.uuid4().hex[:6]}"})
    body = d.model_dump_json()
    for version in ("v1", "v2"):
        await pool.execute(
            "INSERT INTO definitions (name, version, content_hash, body, deployed_by)"
            " VALUES ($1, $2, $3, $4::jsonb, 't')",
            d.name,
            version,
            version * 8,
            body,
        )
    rng = random.Random(7)
    outcomes: dict[str, Counter[str]] = {"v1": Counter(), "v2": Counter()}
    for version, n in (("v1", 300), ("v2", 300)):
        for i in range(n):
            events = simulate(d, version, f"{d.name}-{version}-{i:04d}", rng)
            if version == "v2" and events[-1].type == "DealLost" and rng.random() < 0.6:
                continue  # v2's deals are lost less often: leave those out
            outcomes[version][fold(events).status] += 1
            await event_log.append(
                pool,
                AppendEvents(
                    deal_id=events[0].deal_id,  # type: ignore[union-attr]
                    events=events,
                    snapshot=DealSnapshot.of(fold(events)),
                ),
            )
    return TwoVersions(d, outcomes)


async def test_metrics_cli_json_csv_and_table(two_versions: TwoVersions, cli_env: dict[str, str]) -> None:
    name, stages = two_versions.name, two_versions.definition.stages
    as_json = await dealflow(cli_env, "metrics", "--process", name, "--json")
    assert as_json.code == 0, as_json.err
    [report] = as_json.json()
    both = two_versions.outcomes["v1"] + two_versions.outcomes["v2"]
    assert report["process"] == name
    assert {k: report["deals"][k] for k in ("deals", "won", "lost", "open")} == {
        "deals": both.total(),
        "won": both["won"],
        "lost": both["lost"],
        "open": both["open"],
    }
    assert [s["stage"] for s in report["stages"]] == [s.id for s in stages]
    as_csv = await dealflow(cli_env, "metrics", "--process", name, "--version", "v1", "--csv")
    lines = as_csv.out.strip().splitlines()
    assert lines[0].startswith("process,level,name,entered") and len(lines) == 1 + len(stages) + 4
    table = await dealflow(cli_env, "metrics", "--process", name, "--owner", "bo", "--as-of", "2026-02-01")
    assert table.code == 0 and "win rate" in table.out and "first-contact" in table.out
    bad = await dealflow(cli_env, "metrics", "--process", name, "--since", "last tuesday")
    assert bad.code == 2 and "argument --since: 'last tuesday': expected a date" in bad.err


async def test_compare_versions_gives_a_verdict(two_versions: TwoVersions, cli_env: dict[str, str]) -> None:
    name = two_versions.name
    run = await dealflow(cli_env, "metrics", "compare", f"{name}@v1", f"{name}@v2", "--json")
    assert run.code == 0, run.err
    result = run.json()
    assert result["a"] == f"{name}@v1" and result["b"] == f"{name}@v2"
    assert result["win_rate"] == pytest.approx([two_versions.win_rate("v1"), two_versions.win_rate("v2")])
    assert result["win_rate"][1] > result["win_rate"][0]
    assert f"{name}@v2 wins more often" in result["verdict"] and result["win_rate_p"] < 0.05
    first = result["stages"][0]
    assert first["a"]["interval"][0] <= first["a"]["conversion"] <= first["a"]["interval"][1]
    for stage in result["stages"]:  # no verdict never reads as "the same"
        said = ("not enough deals yet", "not enough data to tell a difference in conversion: ", f"{name}@")
        assert stage["verdict"].startswith(said), stage["verdict"]
        if stage["verdict"].startswith(said[1]):
            assert "deals on each side would tell a difference this size" in stage["verdict"] or (
                "no difference so far" in stage["verdict"]
            )
    table = await dealflow(cli_env, "metrics", "compare", f"{name}@v1", f"{name}@v2")
    assert "p conv." in table.out and "verdict" in table.out


async def test_compare_says_when_there_are_too_few_deals(
    pool: asyncpg.Pool, deployed: dict[str, PinnedDefinition], cli_env: dict[str, str]
) -> None:
    run = await dealflow(cli_env, "metrics", "compare", "nine-stage", "nine-stage", "--json")
    assert run.code == 0, run.err
    assert run.json()["verdict"].startswith("not enough deals yet")


async def test_report_is_a_page_with_charts(two_versions: TwoVersions, cli_env: dict[str, str], tmp_path: Path) -> None:
    run = await dealflow(cli_env, "report", "--out", str(tmp_path / "report"))
    assert run.code == 0, run.err
    page = (tmp_path / "report" / "index.html").read_text()
    assert page.startswith("<!DOCTYPE html>")
    # one section per process with deals (other tests' processes too); this one's has three charts
    [mine] = [s for s in page.split("<h2>")[1:] if f"({two_versions.name})</span></h2>" in s]
    assert mine.count("<svg") == 3
    for chart in ("Funnel", "Time in stage", "Conversion by version"):
        assert f"{chart}: {two_versions.name}" in mine
    both = two_versions.outcomes["v1"] + two_versions.outcomes["v2"]
    assert f"<p>{both.total()} deals: {both['won']} won, {both['lost']} lost, {both['open']} open." in mine
