"""The stage-visit projection: the same rows however the events arrive, and after an upgrade."""

from __future__ import annotations

import random
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest

from bench.generate import simulate
from definitions.loader import PinnedDefinition
from definitions.model import ProcessDefinition
from domain.activity_io import AppendEvents, DealSnapshot
from domain.events import DealEvent
from domain.state import fold
from store import event_log
from store.db import connect_pool
from store.migrations import available, migrate
from store.visits import DealVisits, Visit, advance


def _deals(d: ProcessDefinition, n: int, seed: int) -> list[list[DealEvent]]:
    rng = random.Random(seed)
    return [simulate(d, "v1", f"{d.name}-{i:03d}", rng) for i in range(n)]


def _expected(events: list[DealEvent]) -> list[tuple[object, ...]]:
    return [_row(v) for v in sorted(advance(DealVisits(), events), key=lambda v: v.seq)]


def _row(v: Visit) -> tuple[object, ...]:
    return (
        v.seq,
        v.stage,
        v.via,
        v.entered_at,
        v.visit_no,
        v.completed_at,
        v.exit_type,
        v.exit_at,
        v.exit_seq,
        v.lost_reason,
        v.skipped or None,
        v.first_completion,
        v.first_back,
        v.first_next,
        v.cum_before,
        v.next_entry_at,
    )


async def _stored(pool: asyncpg.Pool, deal_id: str) -> list[tuple[object, ...]]:
    rows = await pool.fetch(
        "SELECT seq, stage, via, entered_at, visit_no, completed_at, exit_type, exit_at, exit_seq, lost_reason,"
        " skipped, first_completion, first_back, first_next, cum_before, next_entry_at"
        " FROM stage_visits WHERE deal_id = $1 ORDER BY seq",
        deal_id,
    )
    return [tuple(r) for r in rows]


@pytest.fixture
def process(deployed: dict[str, PinnedDefinition]) -> ProcessDefinition:
    return deployed["seven-stage"].definition.model_copy(update={"name": f"visits-{uuid.uuid4().hex[:6]}"})


def test_folding_in_pieces_gives_the_same_visits_as_folding_at_once(process: ProcessDefinition) -> None:
    rng = random.Random(7)
    for events in _deals(process, 300, seed=3):
        known, pieces = DealVisits(), {}
        i = 0
        while i < len(events):
            step = rng.randint(1, 4)
            for v in advance(known, events[i : i + step]):
                pieces[v.seq] = v
            i += step
        assert [_row(pieces[k]) for k in sorted(pieces)] == _expected(events)


async def test_appends_in_random_batches_with_retries_project_each_event_once(
    pool: asyncpg.Pool, process: ProcessDefinition
) -> None:
    """Batches of 1 to 5 events, each sent twice (a retry after a lost reply), some re-sent with
    the next batch's events added: the projection equals the fold of the whole history."""
    rng = random.Random(11)
    deals = _deals(process, 150, seed=5)
    for events in deals:
        deal_id = events[0].deal_id  # type: ignore[union-attr]
        i = 0
        while i < len(events):
            j = min(len(events), i + rng.randint(1, 5))
            batch = AppendEvents(deal_id=deal_id, events=events[i:j], snapshot=DealSnapshot.of(fold(events[:j])))
            assert await event_log.append(pool, batch) == j - i
            assert await event_log.append(pool, batch) == 0
            if rng.random() < 0.3 and j < len(events):
                k = min(len(events), j + 2)
                wider = AppendEvents(deal_id=deal_id, events=events[i:k], snapshot=DealSnapshot.of(fold(events[:k])))
                assert await event_log.append(pool, wider) == k - j
                j = k
            i = j
    checked = 0
    for events in deals:
        deal_id = events[0].deal_id  # type: ignore[union-attr]
        assert await _stored(pool, deal_id) == _expected(events), deal_id
        checked += len(events)
    print(f"{len(deals)} deals, {checked} events: every deal's visits match the fold of its history")


@pytest.fixture
async def fresh_database(database_url: str) -> AsyncIterator[str]:
    name = f"dealflow_upgrade_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(database_url)
    try:
        await admin.execute(f"CREATE DATABASE {name}")
        base, _, _ = database_url.rpartition("/")
        yield f"{base}/{name}"
        await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    finally:
        await admin.close()


async def test_upgrading_a_log_written_before_the_projection_fills_it(
    fresh_database: str, process: ProcessDefinition
) -> None:
    """A database at schema 4 with events in its log gains the projection, computed from them."""
    pool = await connect_pool(fresh_database, max_size=2)
    try:
        async with pool.acquire() as conn:
            await conn.execute(
                "CREATE TABLE schema_migrations (version integer PRIMARY KEY, name text NOT NULL,"
                " applied_at timestamptz NOT NULL DEFAULT now())"
            )
            for m in available():
                if m.version <= 4:
                    await conn.execute(m.sql)
                    await conn.execute(
                        "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", m.version, m.name
                    )
        deals = _deals(process, 40, seed=9)
        for events in deals:  # the log as schema 4 had it: rows only
            deal_id = events[0].deal_id  # type: ignore[union-attr]
            await pool.executemany(
                "INSERT INTO deal_events (deal_id, seq, type, occurred_at, actor, stage, process, version, payload)"
                " VALUES ($1, $2, $3, $4, $5, $6, $7, 'v1', $8::jsonb)",
                [
                    (deal_id, e.seq, e.type, e.at, e.actor, e.stage, process.name, event_log.canonical(e))
                    for e in events
                ],
            )
            s = DealSnapshot.of(fold(events))
            await pool.execute(
                "INSERT INTO deals (deal_id, process, version, owner, status, last_seq)"
                " VALUES ($1, $2, 'v1', 'x', $3, $4)",
                deal_id,
                process.name,
                s.status,
                s.last_seq,
            )
        assert await migrate(pool) == [m.version for m in available() if m.version > 4]
        for events in deals:
            assert await _stored(pool, events[0].deal_id) == _expected(events)  # type: ignore[union-attr]
        starts = await pool.fetch("SELECT deal_id, start_owner, start_version FROM deals ORDER BY deal_id")
        assert [(r["deal_id"], r["start_owner"], r["start_version"]) for r in starts] == [
            (ev[0].deal_id, ev[0].owner, "v1")  # type: ignore[union-attr]
            for ev in sorted(deals, key=lambda ev: ev[0].deal_id)  # type: ignore[union-attr]
        ]
    finally:
        await pool.close()
