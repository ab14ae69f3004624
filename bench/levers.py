"""What two of Temporal's and PostgreSQL's levers give the calls that wait for the log, each
against the same call without it, side by side in one run.

- **The log's notification**: a start returns once its deal is readable. The client learns it
  from the append's `pg_notify` (`store.log_watch`, what dealflow does) or, as before, by
  reading the log with a backoff from 20 ms (`PollingWatch`, kept here as the baseline).
- **Eager activity execution**: the append a start or an outcome waits for is an activity; a
  worker that takes it eagerly gets it in the answer to the workflow task that scheduled it,
  instead of through the task queue (`DEALFLOW_EAGER_ACTIVITIES`, the server's
  `system.enableActivityEagerExecution`). The baseline is a second worker with it off.

Samples alternate between the variants, so the machine's drift falls on all of them alike.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

from app import deal_service
from app.context import Context
from store import event_log
from store.log_watch import LogWatch


class PollingWatch(LogWatch):
    """The wait as it was before the notification: read the log, sleep, double the sleep."""

    async def until_logged(self, deal_id: str, min_seq: int, within: float) -> bool:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        pause = 0.02
        while await event_log.last_seq(self._pool, deal_id) < min_seq:
            if loop.time() + pause > deadline:
                return False
            await asyncio.sleep(pause)
            pause = min(pause * 2, 0.25)
        return True


def _p50(values: list[float]) -> float:
    xs = sorted(values)
    return xs[len(xs) // 2]


async def levers(eager: Context, lazy: Context, polling: Context, reason: str, samples: int) -> dict[str, Any]:
    """`eager` is the client as dealflow runs it; `lazy` the same on a worker without eager
    activities; `polling` the same worker as `eager`, its client polling the log."""
    times: dict[str, list[float]] = {
        "start": [],
        "start_polling": [],
        "start_without_eager": [],
        "lose": [],
        "lose_without_eager": [],
    }

    async def start(ctx: Context, what: str) -> str:
        deal_id = f"lever-{uuid.uuid4().hex[:10]}"
        t = time.perf_counter()
        started = await deal_service.start_deal(ctx, "seven-stage", deal_id, "rep")
        times[what].append(time.perf_counter() - t)
        assert started.readable, f"{deal_id} was not readable in time"
        return deal_id

    async def lose(ctx: Context, deal_id: str, what: str) -> None:
        t = time.perf_counter()
        await deal_service.lose(ctx, deal_id, reason, actor="rep")
        times[what].append(time.perf_counter() - t)

    for _ in range(samples):
        eager_deal = await start(eager, "start")
        await start(polling, "start_polling")
        lazy_deal = await start(lazy, "start_without_eager")
        await lose(eager, eager_deal, "lose")
        await lose(lazy, lazy_deal, "lose_without_eager")
    out: dict[str, Any] = {f"{k}_p50_ms": round(_p50(v) * 1000, 2) for k, v in times.items()}
    out["notification_vs_polling_start_p50"] = round(_p50(times["start"]) / _p50(times["start_polling"]), 3)
    out["eager_vs_not_start_p50"] = round(_p50(times["start"]) / _p50(times["start_without_eager"]), 3)
    out["eager_vs_not_lose_p50"] = round(_p50(times["lose"]) / _p50(times["lose_without_eager"]), 3)
    return out
