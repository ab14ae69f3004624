"""The metric aggregates: what the appends add up is what a rebuild from the log computes, however
the events arrive (in pieces, retried, out of time order, after a migration to another version)."""

from __future__ import annotations

import random
import uuid
from dataclasses import replace
from typing import Any

import asyncpg
import pytest

from bench.generate import simulate
from definitions.loader import PinnedDefinition, load_file, shipped
from definitions.model import ProcessDefinition
from domain.activity_io import AppendEvents, DealSnapshot
from domain.events import DealStarted, MigratedToVersion, TouchSent
from domain.state import fold
from store import event_log, history_load
from store.aggregates import (
    COARSE,
    HISTOGRAMS,
    Backfill,
    Contribution,
    DealFacts,
    Group,
    Kind,
    Layout,
    bin_of,
    contributions,
    notices,
    step,
)
from store.history_load import History
from store.visits import DealVisits, advance
from tests.support.aggregates import deploy, migrated, out_of_order


def _seven(name: str) -> ProcessDefinition:
    pinned = load_file(next(p for p in shipped() if p.stem == "seven-stage"))
    return pinned.definition.model_copy(update={"name": name})


def _normal(c: Contribution) -> tuple[dict[Any, int], dict[Any, int]]:
    """A contribution without the keys that add up to nothing, for comparing."""
    totals = {k: n for k, n in c.totals.items() if n}
    steps = {(b, k): n for b, rows in c.steps.items() for k, n in rows.items() if n}
    return totals, steps


@pytest.mark.unit
def test_stepping_batch_by_batch_adds_up_to_the_contribution_from_scratch() -> None:
    """The append's way (each batch's step from what was held) against the back-fill's (a deal's
    whole history at once), over generated deals cut into random batches."""
    d = _seven("stepping")
    layout = Layout.of(d)
    rng = random.Random(5)
    checked = 0
    for i in range(300):
        events = simulate(d, "v1", f"s-{i}", rng)
        known, held = DealVisits(), Contribution()
        facts = DealFacts(None, None, [])
        j = 0
        while j < len(events):
            batch = events[j : j + rng.randint(1, 4)]
            before = replace(facts, visits=[replace(v) for v in known.visits])
            advance(known, batch)
            start = next((e for e in batch if isinstance(e, DealStarted)), None)
            after = replace(
                before,
                started_at=start.at if start else before.started_at,
                value=start.value if start else before.value,
                visits=known.visits,
                notices=notices(batch),
            )
            held.add(step(before, after, layout, (e.at for e in batch)))
            facts = replace(
                after,
                notices=[],
                touches=after.touches + sum(isinstance(e, TouchSent) for e in batch),
                cadence=after.cadence or any(e.type == "CadenceStarted" for e in batch),
            )
            j += len(batch)
        assert _normal(held) == _normal(contributions(DealFacts.of(events), layout)), f"deal {i}"
        checked += 1
    assert checked == 300


@pytest.mark.unit
def test_coarse_bins_hold_consecutive_ranges_in_order() -> None:
    """Each bin is [m * 2**e, (m + 1) * 2**e) for bin = 32 * e + m, as store.metrics reads them."""
    previous = -1
    for x in [*range(0, 5000), *(rng_x for rng_x in random.Random(1).sample(range(5000, 2**45), 5000))]:
        b = bin_of(x)
        e, m = divmod(b, 32)
        assert m * 2**e <= x < (m + 1) * 2**e, x
        if x < 5000:
            assert b >= previous  # bins never go down as values go up
            previous = b
    assert bin_of(-5) == -1


async def _held(pool: asyncpg.Pool, process: str, table: str) -> dict[Any, tuple[int, float]]:
    """The aggregates' rows of a process, by group (not its id) and key."""
    days = "t.sb, t.eb, " if table == "metric_buckets" else ""
    rows = await pool.fetch(
        f"SELECT g.process, g.layout, g.start_version, g.version, g.start_owner, g.experiment, {days}"
        " t.kind, t.stage, t.detail, t.x, t.n, t.s FROM " + table + " t JOIN metric_groups g USING (gid)"
        " WHERE g.process = $1 AND (t.n <> 0 OR abs(t.s) > 1e-6)",
        process,
    )
    return {(Group(*tuple(r)[:6]), *tuple(r)[6:-2]): (r["n"], r["s"]) for r in rows}


def _expected(fill: Backfill, which: str) -> dict[Any, tuple[int, float]]:
    group_of = {gid: g for g, (gid, _) in fill.groups.items()}
    rows: dict[Any, list[float]]
    if which == "metric_totals":
        rows = {(group_of[gid], *key): v for (gid, key), v in fill.rows.totals.items()}
    else:
        rows = {(group_of[gid], sb, eb, *key): v for (gid, sb, eb, key), v in fill.rows.steps.items()}
    return {k: (int(n), s) for k, (n, s) in rows.items() if n or abs(s) > 1e-6}


async def test_appends_in_pieces_with_retries_hold_what_a_rebuild_computes(
    pool: asyncpg.Pool, deployed: dict[str, PinnedDefinition]
) -> None:
    """Batches of 1 to 5 events, each sent twice (a retry after a lost reply), some re-sent with
    the next batch's events added; some deals migrated to another version (whose phases differ)
    after their figures were held, some with an event out of time order: the aggregate rows equal
    the back-fill's from the whole histories, row by row, in total and day by day."""
    d = _seven(f"agg-{uuid.uuid4().hex[:6]}")
    await deploy(pool, d, "v1")
    regrouped = [s.model_copy(update={"phase": "get-in"}) if s.id == d.stages[2].id else s for s in d.stages]
    await deploy(pool, d.model_copy(update={"stages": regrouped}), "v2")
    rng = random.Random(11)
    deals = []
    for i in range(160):
        events = simulate(d, "v1", f"{d.name}-{i:03d}", rng)
        if i % 3 == 0 and fold(events).status == "open":
            events = migrated(d, events)
        elif i % 11 == 0 and len(events) > 6:
            events = out_of_order(events)
        deals.append(events)
    assert sum(e[-1].type == "MigratedToVersion" for e in deals) >= 5
    for events in deals:
        deal_id = events[0].deal_id  # type: ignore[union-attr]
        i = 0
        while i < len(events):
            j = min(len(events), i + rng.randint(1, 5))
            batch = AppendEvents(deal_id=deal_id, events=events[i:j], snapshot=DealSnapshot.of(fold(events[:j])))
            assert await event_log.append(pool, batch) == j - i
            assert await event_log.append(pool, batch) == 0  # the retry adds nothing
            if rng.random() < 0.3 and j < len(events):
                k = min(len(events), j + 2)
                wider = AppendEvents(deal_id=deal_id, events=events[i:k], snapshot=DealSnapshot.of(fold(events[:k])))
                assert await event_log.append(pool, wider) == k - j
                j = k
            i = j
    layouts = {(d.name, "v1"): Layout.of(d), (d.name, "v2"): Layout.of(d.model_copy(update={"stages": regrouped}))}
    fill = Backfill(layouts, {})
    for events in deals:
        last = events[-1]
        fill.add(
            str(fold(events).deal_id), d.name, last.to_version if isinstance(last, MigratedToVersion) else "v1", events
        )
    for table in ("metric_totals", "metric_buckets"):
        held, expected = await _held(pool, d.name, table), _expected(fill, table)
        assert held.keys() == expected.keys(), table
        assert all(held[k][0] == expected[k][0] and abs(held[k][1] - expected[k][1]) < 1e-6 for k in held), table
    kinds = {k[1] for k in _expected(fill, "metric_totals")}
    # every kind of figure (the generator escalates nothing), and the histograms' coarse rows
    assert kinds == {*Kind, *(k + COARSE for k in HISTOGRAMS)} - {Kind.ESCALATIONS}
    states = await pool.fetch(
        "SELECT deal_id, started_at, value, touches, cadence, last_at FROM deal_metric_state WHERE deal_id LIKE $1",
        f"{d.name}-%",
    )
    assert sorted(tuple(r) for r in states) == sorted((s[0], *s[2:]) for s in fill.states)


async def test_histories_written_in_bulk_add_their_aggregates(
    pool: asyncpg.Pool, deployed: dict[str, PinnedDefinition]
) -> None:
    """Imported closed deals go to the log by COPY (`store.history_load`), not through the append:
    their aggregates are added in the same transaction, as a rebuild computes them."""
    d = _seven(f"bulk-{uuid.uuid4().hex[:6]}")
    await deploy(pool, d, "v1")
    rng = random.Random(17)
    deals = [simulate(d, "v1", f"{d.name}-{i:03d}", rng) for i in range(120)]
    async with pool.acquire() as conn, conn.transaction():
        await history_load.load(conn, [History(str(fold(e).deal_id), d.name, "v1", e) for e in deals[:60]])
    async with pool.acquire() as conn, conn.transaction():
        await history_load.load(conn, [History(str(fold(e).deal_id), d.name, "v1", e) for e in deals[60:]])
    fill = Backfill({(d.name, "v1"): Layout.of(d)}, {})
    for events in deals:
        fill.add(str(fold(events).deal_id), d.name, "v1", events)
    for table in ("metric_totals", "metric_buckets"):
        held, expected = await _held(pool, d.name, table), _expected(fill, table)
        assert held.keys() == expected.keys(), table
        assert all(held[k][0] == expected[k][0] and abs(held[k][1] - expected[k][1]) < 1e-6 for k in held), table
    assert await pool.fetchval("SELECT count(*) FROM deal_metric_state WHERE deal_id LIKE $1", f"{d.name}-%") == 120
