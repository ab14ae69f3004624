"""The event log: exactly once, whatever the activity's retries and failures."""

from __future__ import annotations

import uuid

import asyncpg
import pytest
from temporalio import activity
from temporalio.client import Client
from temporalio.worker import Worker

from audit.verify import LogRow, check_chain
from client.api import DealflowClient
from definitions.loader import PinnedDefinition
from domain.activity_io import APPEND_EVENTS, AppendEvents, AppendReceipt
from store import event_log
from tests.support import LOG_T0, log_batch, new_deal_id, wait_for
from worker.settings import Settings
from workflows.deal import DealWorkflow


async def test_append_is_idempotent_and_projection_never_goes_back(pool: asyncpg.Pool) -> None:
    deal = new_deal_id("log")
    assert await event_log.append(pool, log_batch(deal, range(1, 4))) == 3
    assert await event_log.append(pool, log_batch(deal, range(1, 4))) == 0
    assert await event_log.append(pool, log_batch(deal, range(2, 6))) == 2  # overlapping retry: only the new ones
    assert await event_log.count(pool, deal) == 5
    await event_log.append(pool, log_batch(deal, range(1, 3)))  # an old, late retry
    row = await pool.fetchrow("SELECT last_seq, stage FROM deals WHERE deal_id = $1", deal)
    assert row is not None and row["last_seq"] == 5 and row["stage"] == "s5"
    assert [e.seq for e in await event_log.read(pool, deal)] == [1, 2, 3, 4, 5]


class FlakyEventLog:
    """Fails the way real appends fail: mid-transaction, and after commit with the reply lost."""

    def __init__(self, pool: asyncpg.Pool):
        self.pool = pool
        self.attempts: list[int] = []

    @activity.defn(name=APPEND_EVENTS)
    async def append_events(self, batch: AppendEvents) -> AppendReceipt:
        attempt = activity.info().attempt
        self.attempts.append(attempt)
        if attempt == 1:  # killed mid-way: rows inserted, transaction never commits
            async with self.pool.acquire() as conn:
                tx = conn.transaction()
                await tx.start()
                await conn.execute(
                    "INSERT INTO deal_events (deal_id, seq, type, occurred_at, actor, process, version,"
                    " payload) VALUES ($1, 1, 'DealStarted', now(), 'x', 'p', 'v', '{}')",
                    batch.deal_id,
                )
                await tx.rollback()
            raise RuntimeError("worker died mid-append")
        if attempt == 2:  # committed, then the worker died before replying
            await event_log.append(self.pool, batch)
            raise RuntimeError("worker died after commit")
        new = await event_log.append(self.pool, batch)
        return AppendReceipt(new=new)


async def test_failed_and_retried_appends_leave_each_event_once(
    temporal_client: Client, pool: asyncpg.Pool, database_url: str, deployed: dict[str, PinnedDefinition]
) -> None:
    queue = f"flaky-{uuid.uuid4().hex[:6]}"
    flaky = FlakyEventLog(pool)
    client = DealflowClient(temporal_client, pool, Settings(database_url=database_url, task_queue=queue))
    async with Worker(temporal_client, task_queue=queue, workflows=[DealWorkflow], activities=[flaky.append_events]):
        deal = new_deal_id("flaky")
        await client.start_deal("three-phase", deal, "fay")

        async def third_attempt_done() -> bool:
            return len(flaky.attempts) >= 3 and await event_log.count(pool, deal) >= 2

        await wait_for(third_attempt_done, timeout=30)
        assert flaky.attempts[:3] == [1, 2, 3]
        await client.lose(deal, "price", actor="fay")
        events = await client.events(deal)

        async def all_logged() -> bool:
            return await event_log.count(pool, deal) == len(events)

        await wait_for(all_logged, timeout=30)
        rows = await pool.fetch("SELECT seq FROM deal_events WHERE deal_id = $1 ORDER BY seq", deal)
        assert [r["seq"] for r in rows] == list(range(1, len(events) + 1))
        assert await event_log.read(pool, deal) == events


@pytest.mark.parametrize(
    "url", ["postgresql://nobody@127.0.0.1:1/none", pytest.param("not a url", marks=pytest.mark.unit)]
)
async def test_unreachable_database_is_named(url: str) -> None:
    from store.db import StoreUnavailable, connect_pool

    with pytest.raises(StoreUnavailable, match="cannot connect to PostgreSQL"):
        await connect_pool(url)


async def test_a_batch_that_differs_from_the_log_is_refused_and_no_row_changes(pool: asyncpg.Pool) -> None:
    """Every batch comes from Temporal's history, so one that disagrees with the log means the log
    was altered or an event escaped that Temporal never recorded: the log is never rewritten."""
    deal = new_deal_id("log")
    first = log_batch(deal, range(1, 4))
    assert await event_log.append(pool, first) == 3
    before = await pool.fetch("SELECT seq, payload::text, hash FROM deal_events WHERE deal_id = $1 ORDER BY seq", deal)
    later = first.events[2].model_copy(update={"at": LOG_T0.replace(hour=10)})
    differing = first.model_copy(update={"events": [*first.events[:2], later]})
    with pytest.raises(event_log.LogConflict, match=f"deal {deal}: the log holds a different event 3"):
        await event_log.append(pool, differing)
    after = await pool.fetch("SELECT seq, payload::text, hash FROM deal_events WHERE deal_id = $1 ORDER BY seq", deal)
    assert after == before
    assert await event_log.append(pool, first) == 0  # a retry of what was logged is fine
    rows = await pool.fetch(
        "SELECT seq, payload::text AS payload, prev_hash, hash FROM deal_events WHERE deal_id = $1 ORDER BY seq", deal
    )
    assert check_chain([LogRow(r["seq"], r["payload"], r["prev_hash"], r["hash"]) for r in rows]) == []


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE deal_events SET actor = 'mallory' WHERE deal_id = $1",
        "DELETE FROM deal_events WHERE deal_id = $1",
        "TRUNCATE deal_events",
    ],
)
async def test_the_database_refuses_to_update_delete_or_truncate_the_log(pool: asyncpg.Pool, statement: str) -> None:
    deal = new_deal_id("append-only")
    await event_log.append(pool, log_batch(deal, range(1, 3)))
    before = await pool.fetch("SELECT * FROM deal_events WHERE deal_id = $1 ORDER BY seq", deal)
    args = [deal] if "$1" in statement else []
    with pytest.raises(asyncpg.InsufficientPrivilegeError, match="the event log is append-only"):
        await pool.execute(statement, *args)
    assert await pool.fetch("SELECT * FROM deal_events WHERE deal_id = $1 ORDER BY seq", deal) == before
