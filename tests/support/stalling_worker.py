"""A worker whose event-log append stalls right after it commits a batch holding an outcome, as a
worker does that dies at that instant: the activity never reports back. The crash tests SIGKILL
it there.

    python -m tests.support.stalling_worker

reads the same environment as `dealflow worker`.
"""

from __future__ import annotations

import asyncio

from temporalio import activity

from activities.event_log import EventLogActivities
from domain.activity_io import APPEND_EVENTS, AppendEvents, AppendReceipt
from domain.events import DealLost, DealWon
from store.db import connect_pool
from worker.connect import connect_temporal
from worker.run import build_worker
from worker.settings import Settings


class StallingEventLog(EventLogActivities):
    @activity.defn(name=APPEND_EVENTS)
    async def append_events(self, batch: AppendEvents) -> AppendReceipt:
        receipt = await super().append_events(batch)
        if any(isinstance(e, DealWon | DealLost) for e in batch.events):
            await asyncio.Event().wait()  # committed; the reply never comes
        return receipt


async def main() -> None:
    settings = Settings.resolve()
    pool = await connect_pool(settings.database_url)
    client = await connect_temporal(settings)
    async with build_worker(client, pool, settings.task_queue, event_log=StallingEventLog(pool)):
        await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main())
