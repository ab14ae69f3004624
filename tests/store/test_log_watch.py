"""Waiting for the log: woken by the append's notification, bounded by its deadline, and leaving
the pool as it found it."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from store import event_log, log_watch
from store.db import connect_pool
from store.log_watch import LogWatch
from tests.support import log_batch, new_deal_id


@pytest.fixture
def no_backstop(monkeypatch: pytest.MonkeyPatch) -> None:
    """The backstop's reads out of the way: a wait that ends in time was woken by a notification."""
    monkeypatch.setattr(log_watch, "BACKSTOP", 600.0)


async def test_a_wait_is_woken_by_the_append_that_reaches_its_seq(pool: asyncpg.Pool, no_backstop: None) -> None:
    watch = LogWatch(pool)
    deal = new_deal_id("watch")
    waiting = asyncio.create_task(watch.until_logged(deal, 2, within=300))
    await asyncio.sleep(0.2)  # the waiter is listening
    assert not waiting.done()
    await event_log.append(pool, log_batch(deal, range(1, 3)))
    assert await asyncio.wait_for(waiting, timeout=60) is True


async def test_a_notice_for_an_earlier_seq_or_another_deal_does_not_end_the_wait(
    pool: asyncpg.Pool, no_backstop: None
) -> None:
    watch = LogWatch(pool)
    deal, other = new_deal_id("watch"), new_deal_id("other")
    waiting = asyncio.create_task(watch.until_logged(deal, 3, within=300))
    await asyncio.sleep(0.2)
    await event_log.append(pool, log_batch(other, range(1, 4)))
    await event_log.append(pool, log_batch(deal, range(1, 3)))
    await asyncio.sleep(0.5)
    assert not waiting.done()
    await event_log.append(pool, log_batch(deal, range(1, 4)))
    assert await asyncio.wait_for(waiting, timeout=60) is True


async def test_a_seq_already_logged_is_found_at_once_and_one_never_logged_times_out(pool: asyncpg.Pool) -> None:
    watch = LogWatch(pool)
    deal = new_deal_id("watch")
    await event_log.append(pool, log_batch(deal, range(1, 3)))
    assert await watch.until_logged(deal, 2, within=0) is True
    assert await watch.until_logged(deal, 3, within=0.3) is False


async def test_many_waiters_share_one_listener_and_the_pool_closes_after_them(database_url: str) -> None:
    pool = await connect_pool(database_url, max_size=4)
    try:
        watch = LogWatch(pool)
        deals = [new_deal_id("many") for _ in range(12)]
        waits = [asyncio.create_task(watch.until_logged(d, 1, within=60)) for d in deals]
        await asyncio.sleep(0.2)
        assert watch._listener is not None  # one connection of four, for twelve waiters
        for d in deals:
            await event_log.append(pool, log_batch(d, range(1, 2)))
        assert await asyncio.wait_for(asyncio.gather(*waits), timeout=60) == [True] * 12
        assert watch._listener is None  # given back when the last waiter left
    finally:
        await asyncio.wait_for(pool.close(), timeout=30)


async def test_a_lost_listener_leaves_the_waits_to_the_backstop(pool: asyncpg.Pool) -> None:
    watch = LogWatch(pool)
    deal = new_deal_id("lost")
    waiting = asyncio.create_task(watch.until_logged(deal, 1, within=60))
    await asyncio.sleep(0.2)
    assert watch._listener is not None
    await pool.execute("SELECT pg_terminate_backend($1)", watch._listener.get_server_pid())
    await event_log.append(pool, log_batch(deal, range(1, 2)))
    assert await asyncio.wait_for(waiting, timeout=60) is True
    assert watch._listener is None
    assert await watch.until_logged(deal, 1, within=1) is True  # and the next waiter listens afresh
