"""The activity that carries a deal's events out of the workflow into the event log."""

from __future__ import annotations

import asyncpg
from temporalio import activity

from domain.activity_io import APPEND_EVENTS, AppendEvents, AppendReceipt
from store import event_log


class EventLogActivities:
    """Holds the connection pool; one instance per worker."""

    def __init__(self, pool: asyncpg.Pool):
        self._pool = pool

    @activity.defn(name=APPEND_EVENTS)
    async def append_events(self, batch: AppendEvents) -> AppendReceipt:
        """Append idempotently; a retry after a crash or a lost reply inserts nothing twice."""
        inserted = await event_log.append(self._pool, batch)
        activity.logger.debug("deal %s: %d of %d events new", batch.deal_id, inserted, len(batch.events))
        return AppendReceipt(new=inserted)
