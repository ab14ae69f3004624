"""The activity that carries a deal's events out of the workflow into the event log."""

from __future__ import annotations

import logging

import asyncpg
from temporalio import activity

from audit import repair
from domain.activity_io import APPEND_EVENTS, AppendEvents, AppendReceipt
from store import event_log, log_failures
from store.db import DATABASE_ERRORS

log = logging.getLogger("dealflow.event_log")


class EventLogActivities:
    """Holds the connection pool; one instance per worker."""

    def __init__(self, pool: asyncpg.Pool):
        self._pool = pool

    @activity.defn(name=APPEND_EVENTS)
    async def append_events(self, batch: AppendEvents) -> AppendReceipt:
        """Append idempotently; a retry after a crash or a lost reply inserts nothing twice.

        Temporal retries a failed attempt until it goes through. Each failure is also recorded
        (store.log_failures), so that a batch the log refuses every time is seen, in the deal's
        status, `audit verify`, /readyz and a gauge, rather than retried in silence.
        """
        attempt = activity.info().attempt
        try:
            inserted = await self._append(batch)
        except Exception as exc:
            await self._failed(batch, exc, attempt)
            raise
        if attempt > 1 and batch.events:
            await self._caught_up(batch)
        activity.logger.debug("deal %s: %d of %d events new", batch.deal_id, inserted, len(batch.events))
        return AppendReceipt(new=inserted)

    async def _append(self, batch: AppendEvents) -> int:
        """The batch appended; when the log lacks the events before it (an earlier batch lost with
        a crash of the database), those first, from what Temporal recorded of them."""
        try:
            return await event_log.append(self._pool, batch)
        except event_log.LogGap as gap:
            filled = await repair.fill(activity.client(), self._pool, batch.deal_id, before=gap.first_seq)
            log.warning("deal %s: the log lacked %d events before this batch; appended them again", gap.deal_id, filled)
            return await event_log.append(self._pool, batch)

    async def _failed(self, batch: AppendEvents, exc: Exception, attempt: int) -> None:
        seqs = [e.seq for e in batch.events] or [0]
        error = f"{type(exc).__name__}: {exc}"
        log.error(
            "deal %s: append of events %d..%d failed (attempt %d, retried by Temporal): %s",
            batch.deal_id,
            min(seqs),
            max(seqs),
            attempt,
            error,
        )
        try:
            await log_failures.record(self._pool, batch.deal_id, min(seqs), max(seqs), error, attempt)
        except DATABASE_ERRORS as also:
            log.warning("deal %s: the failed append could not be recorded either: %s", batch.deal_id, also)

    async def _caught_up(self, batch: AppendEvents) -> None:
        try:
            await log_failures.clear(self._pool, batch.deal_id, max(e.seq for e in batch.events))
        except DATABASE_ERRORS as exc:
            log.warning("deal %s: its recorded append failure could not be cleared: %s", batch.deal_id, exc)
