"""The read models are the same whichever way a deal's events reach the log: appended live, batch
by batch with retries (`store.event_log.append`, what the workflow's activity calls), or loaded
whole in bulk (`store.history_load`, what an import of closed deals calls). The same deals go
each way into a database of their own, and every row of every read model is compared, every
column of it."""

from __future__ import annotations

import random
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import asyncpg
import pytest

from bench.generate import simulate
from definitions.loader import PinnedDefinition, load_file, shipped
from definitions.model import ProcessDefinition
from domain import decide
from domain.activity_io import AppendEvents, DealSnapshot
from domain.events import DealEvent, DealStarted, Escalated, SlaBreached
from domain.state import fold
from store import event_log, history_load, projections
from store.db import connect_pool
from store.migrations import MIGRATIONS_DIR, migrate
from store.projections import DealBatch
from tests.support.aggregates import deploy, migrated, out_of_order

# a metric group by what it is, not by its id (ids are handed out in the order groups are met)
_GROUP = "g.process, g.layout, g.start_version, g.version, g.start_owner, g.experiment"
# The rows compared, each table whole. The aggregates' rows are signed steps added into rows
# shared by many deals: a live append may add to a row and a later one take it back to nothing,
# where a load of the whole history never writes that row; such a row (n = 0, s = 0) adds
# nothing to any figure, and is left out of both sides.
_READ_MODELS = {
    "deals": "SELECT {columns} FROM deals t ORDER BY deal_id",
    "stage_visits": "SELECT {columns} FROM stage_visits t ORDER BY deal_id, seq",
    "deal_metric_state": f"SELECT {_GROUP}, {{columns}} FROM deal_metric_state t JOIN metric_groups g USING (gid)"
    " ORDER BY deal_id",
    "metric_totals": f"SELECT {_GROUP}, {{columns}} FROM metric_totals t JOIN metric_groups g USING (gid)"
    " WHERE t.n <> 0 OR t.s <> 0 ORDER BY 1, 2, 3, 4, 5, 6, kind, stage, detail, x",
    "metric_buckets": f"SELECT {_GROUP}, {{columns}} FROM metric_buckets t JOIN metric_groups g USING (gid)"
    " WHERE t.n <> 0 OR t.s <> 0 ORDER BY 1, 2, 3, 4, 5, 6, sb, eb, kind, stage, detail, x",
    "metric_groups": f"SELECT {_GROUP}, r.version IS NULL AND r.gid IS NOT NULL AS has_rollup"
    " FROM metric_groups g LEFT JOIN metric_groups r ON r.gid = g.rollup ORDER BY 1, 2, 3, 4, 5, 6",
}
# columns that name a row's place rather than what it holds: the group's id (compared through
# the group it stands for) and the time the row was written
_PLACES = {"gid", "rollup", "updated_at"}


def _seven(name: str) -> ProcessDefinition:
    pinned = load_file(next(p for p in shipped() if p.stem == "seven-stage"))
    return pinned.definition.model_copy(update={"name": name})


def _deals(d: ProcessDefinition) -> list[list[DealEvent]]:
    """Generated deals of every kind: won, lost and open ones; ones that started with a customer,
    a team, an experiment and the deal they follow on from; open ones with SLA breaches and an
    escalation since their current stage (the board's marks); ones migrated to v2 (their
    aggregates rewritten by the live append) and one with an event out of time order."""
    rng = random.Random(23)
    out = []
    for i in range(60):
        events = simulate(d, "v1", f"{d.name}-{i:03d}", rng)
        if i % 2 == 0:
            first = events[0]
            assert isinstance(first, DealStarted)
            events[0] = first.model_copy(
                update={
                    "fields": {"customer": f"customer-{i % 5}"},
                    "team": f"team-{i % 3}",
                    "experiment": "exp-1" if i % 4 == 0 else None,
                    "follows": f"{d.name}-000" if i % 6 == 0 else None,
                    "follow_kind": "up-selling" if i % 6 == 0 else None,
                }
            )
        state = fold(events)
        if state.status == "open" and state.stage is not None:
            at = events[-1].at + timedelta(hours=2)
            for n in range(i % 3 + 1):
                events += decide.system_event(fold(events), SlaBreached, at + timedelta(hours=n), due_at=at)
            events += decide.system_event(
                fold(events), Escalated, at + timedelta(hours=5), level=1 + i % 2, notify="owner", to="boss", due_at=at
            )
            if i % 3 == 0:
                events = migrated(d, events)
        if i == 7:
            events = out_of_order(events)
        out.append(events)
    return out


@pytest.fixture
async def two_databases(database_url: str) -> AsyncIterator[tuple[asyncpg.Pool, asyncpg.Pool]]:
    """Two fresh databases on the session's server, migrated, dropped afterwards."""
    base, _, _ = database_url.rpartition("/")
    names = [f"projections_{which}_{uuid.uuid4().hex[:8]}" for which in ("live", "bulk")]
    admin = await asyncpg.connect(database_url)
    pools = []
    try:
        for name in names:
            await admin.execute(f"CREATE DATABASE {name}")
            pool = await connect_pool(f"{base}/{name}", max_size=4)
            pools.append(pool)
            await migrate(pool)
        yield pools[0], pools[1]
    finally:
        for pool in pools:
            await pool.close()
        for name in names:
            await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        await admin.close()


async def _columns(pool: asyncpg.Pool, table: str) -> list[str]:
    rows = await pool.fetch(
        "SELECT column_name FROM information_schema.columns WHERE table_name = $1 AND table_schema = 'public'"
        " ORDER BY ordinal_position",
        table,
    )
    return [r["column_name"] for r in rows]


async def _rows(pool: asyncpg.Pool, table: str) -> list[dict[str, Any]]:
    columns = ", ".join(f"t.{c}" for c in await _columns(pool, table) if c not in _PLACES)
    return [dict(r) for r in await pool.fetch(_READ_MODELS[table].format(columns=columns))]


async def test_an_imported_deal_has_the_rows_of_a_live_one(
    two_databases: tuple[asyncpg.Pool, asyncpg.Pool],
) -> None:
    live, bulk = two_databases
    d = _seven("projected")
    regrouped = [s.model_copy(update={"phase": "get-in"}) if s.id == d.stages[2].id else s for s in d.stages]
    for pool in (live, bulk):
        await deploy(pool, d, "v1")
        await deploy(pool, d.model_copy(update={"stages": regrouped}), "v2")
    deals = _deals(d)
    rng = random.Random(3)
    for events in deals:
        deal_id = str(fold(events).deal_id)
        i = 0
        while i < len(events):
            j = min(len(events), i + rng.randint(1, 5))
            batch = AppendEvents(deal_id=deal_id, events=events[i:j], snapshot=DealSnapshot.of(fold(events[:j])))
            assert await event_log.append(live, batch) == j - i
            if rng.random() < 0.3:
                assert await event_log.append(live, batch) == 0, "a retry adds nothing"
            i = j
    histories = [history_load.History(str(fold(e).deal_id), d.name, fold(e).version, e) for e in deals]
    async with bulk.acquire() as conn, conn.transaction():  # two loads, as an import's batches are
        assert await history_load.load(conn, histories[:25]) == sum(len(e) for e in deals[:25])
    async with bulk.acquire() as conn, conn.transaction():
        await history_load.load(conn, histories[25:])

    for table in _READ_MODELS:
        got, expected = await _rows(bulk, table), await _rows(live, table)
        assert len(got) == len(expected), table
        for loaded, appended in zip(got, expected, strict=True):
            assert loaded == appended, (table, {k: (v, appended[k]) for k, v in loaded.items() if v != appended[k]})
    # what the comparison covers: every kind of deal, and the columns the bulk path used to leave out
    row = {r["deal_id"]: r for r in await _rows(bulk, "deals")}
    assert {r["status"] for r in row.values()} == {"won", "lost", "open"}
    assert sum(r["customer"] is not None and r["team"] is not None for r in row.values()) == 30
    assert any(r["experiment"] for r in row.values()) and any(r["follows"] for r in row.values())
    assert any(r["stage_sla_breaches"] >= 2 and r["stage_escalation"] == 2 for r in row.values())
    assert any(r["version"] == "v2" for r in row.values())
    assert await bulk.fetchval("SELECT count(*) FROM metric_buckets") > 100
    # the log's chain is the same too (each row's own version column is the one its batch had)
    chain = "SELECT deal_id, seq, type, payload, prev_hash, hash FROM deal_events ORDER BY deal_id, seq"
    assert [tuple(r) for r in await bulk.fetch(chain)] == [tuple(r) for r in await live.fetch(chain)]


async def test_a_batch_given_twice_in_one_call_is_refused_and_changes_nothing(
    pool: asyncpg.Pool, deployed: dict[str, PinnedDefinition]
) -> None:
    """Each deal's rows are written once per statement: a deal twice in a call is a caller's bug."""
    d = _seven(f"twice-{uuid.uuid4().hex[:6]}")
    events = simulate(d, "v1", f"{d.name}-1", random.Random(1))
    batch = DealBatch(f"{d.name}-1", d.name, "v1", DealSnapshot.of(fold(events)), events)
    async with pool.acquire() as conn:
        with pytest.raises(ValueError, match="more than one batch"):
            await projections.apply(conn, [batch, batch])
    assert await pool.fetchval("SELECT count(*) FROM deals WHERE deal_id = $1", f"{d.name}-1") == 0


async def test_closed_deals_imported_before_get_the_rows_the_projection_makes(
    pool: asyncpg.Pool, deployed: dict[str, PinnedDefinition]
) -> None:
    """Migration 0023 fills what the old bulk path left out of imported deals' rows (their start
    attributes, the board's marks) from the log, as the projection computes it."""
    d = _seven(f"old-{uuid.uuid4().hex[:6]}")
    await deploy(pool, d, "v1")
    deals = [e for e in _deals(d) if fold(e).version == "v1"][:20]
    histories = [history_load.History(str(fold(e).deal_id), d.name, "v1", e) for e in deals]
    ids = [h.deal_id for h in histories]
    import_id = f"imp-{uuid.uuid4().hex[:8]}"
    async with pool.acquire() as conn, conn.transaction():
        await history_load.load(conn, histories)
        await conn.execute(
            "INSERT INTO imports (import_id, source, process, version, files, started_by)"
            " VALUES ($1, 'csv', $2, 'v1', '[]'::jsonb, 'tests')",
            import_id,
            d.name,
        )
        await conn.executemany(
            "INSERT INTO imported_deals (source, crm_id, deal_id, import_id, kind, file, sha256, row_number)"
            " VALUES ('csv', $1, $1, $2, 'closed', 'export.csv', 'x', 2)",
            [(deal_id, import_id) for deal_id in ids],
        )
    select = (
        "SELECT deal_id, customer, team, experiment, follows, follow_kind, stage_sla_breaches, stage_escalation"
        " FROM deals WHERE deal_id = ANY($1::text[]) ORDER BY deal_id"
    )
    projected = [tuple(r) for r in await pool.fetch(select, ids)]
    assert any(r[1] is not None for r in projected) and any(r[6] for r in projected)
    # the rows as the bulk load wrote them before it went through the projections
    await pool.execute(
        "UPDATE deals SET customer = NULL, team = NULL, experiment = NULL, follows = NULL, follow_kind = NULL,"
        " stage_sla_breaches = 0, stage_escalation = 0 WHERE deal_id = ANY($1::text[])",
        ids,
    )
    sql = (MIGRATIONS_DIR / "0023_imported_deal_rows.sql").read_text(encoding="utf-8")
    await pool.execute(sql)
    assert [tuple(r) for r in await pool.fetch(select, ids)] == projected
