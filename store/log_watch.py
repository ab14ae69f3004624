"""Waiting for a deal's events to reach the log, woken by PostgreSQL's notifications.

Every append that adds events notifies `CHANNEL` with the deal and its last logged seq, and
PostgreSQL delivers the notification when the append's transaction commits. A process that waits
(a start that returns once its deal is readable, a read of one's own write) listens on one
connection of its pool, shared by all its waiters and held only while someone waits, so a pool
closed after the last wait is never kept open by the watch. The wait is a few milliseconds after
the commit instead of a poll's backoff step.

Notifications are a wake-up, not the record: the log's own `last_seq` decides. A wait reads it
first (a seq already logged needs no listener), again once the listener is up (so no commit can
fall between its check and its listening), after each
notification that names its deal, and every `BACKSTOP` seconds regardless, which also covers a
listener that could not be set up or lost its connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict

import asyncpg

from store import event_log
from store.db import DATABASE_ERRORS
from store.visits import Conn

CHANNEL = event_log.NOTIFY_CHANNEL
# a waiter reads the log at least this often, notification or not
BACKSTOP = 0.25

# what setting up the listener may meet: the database's errors, or no connection free in time
ACQUIRE_ERRORS: tuple[type[Exception], ...] = (*DATABASE_ERRORS, TimeoutError)

log = logging.getLogger(__name__)


class LogWatch:
    """One per pool: the waiters of a process, and the connection they listen on."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool
        self._waiters: dict[str, set[asyncio.Event]] = defaultdict(set)
        self._count = 0
        self._listener: asyncpg.pool.PoolConnectionProxy | None = None
        self._lock = asyncio.Lock()

    async def until_logged(self, deal_id: str, min_seq: int, within: float) -> bool:
        """Wait, `within` seconds at most, until the log holds the deal's event `min_seq`; whether it does."""
        if await event_log.last_seq(self._pool, deal_id) >= min_seq:
            return True  # the common case, a read with nothing to wait for: no listener needed
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        woken = asyncio.Event()
        self._waiters[deal_id].add(woken)
        self._count += 1
        try:
            await self._listen(within)
            while True:
                woken.clear()  # before the read: a notice that comes after it wakes the wait below
                if await event_log.last_seq(self._pool, deal_id) >= min_seq:
                    return True
                left = deadline - loop.time()
                if left <= 0:
                    return False
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(woken.wait(), timeout=min(left, BACKSTOP))
        finally:
            self._waiters[deal_id].discard(woken)
            if not self._waiters[deal_id]:
                del self._waiters[deal_id]
            self._count -= 1
            if self._count == 0:
                await self._release()

    async def _listen(self, within: float) -> None:
        """The shared listener, set up by the first waiter; a failure leaves the waiters to the
        backstop's reads (and is logged), never fails the wait."""
        async with self._lock:
            if self._listener is not None:
                return
            try:
                conn = await self._pool.acquire(timeout=within)
            except ACQUIRE_ERRORS as exc:
                log.warning("log watch: no connection to listen on (%s); waiting by reading the log", exc)
                return
            try:
                await conn.add_listener(CHANNEL, self._notified)
            except DATABASE_ERRORS as exc:
                log.warning("log watch: LISTEN failed (%s); waiting by reading the log", exc)
                await self._pool.release(conn)
                return
            self._listener = conn

    def _notified(self, _conn: Conn, _pid: int, _channel: str, payload: object) -> None:
        parsed = event_log.parse_notice(str(payload))
        if parsed is None:
            return
        for woken in self._waiters.get(parsed[0], ()):
            woken.set()

    async def _release(self) -> None:
        async with self._lock:
            if self._count or self._listener is None:
                return  # a new waiter came while this one left: it listens on
            conn, self._listener = self._listener, None
            try:
                await conn.remove_listener(CHANNEL, self._notified)
            except DATABASE_ERRORS:
                pass  # a lost connection listens no more; the pool replaces it
            finally:
                await self._pool.release(conn)
