"""Whether a worker can do its work: PostgreSQL answers, the worker polls a Temporal that
answers, and no deal's appends to the event log have been failing for long. What `/readyz`
reports (worker.endpoint); `/livez` only needs the process to answer."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import timedelta

import asyncpg
from temporalio.client import Client
from temporalio.service import RPCError
from temporalio.worker import Worker

from store import log_failures
from store.db import DATABASE_ERRORS

# each check gives up after this long: a probe must answer within its own timeout
CHECK_TIMEOUT = 2.0
# an append may fail for this long (a restart, a failover) before the log counts as lagging
LOG_FAILURE_GRACE = 60.0


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str

    def line(self) -> str:
        return f"{'ok' if self.ok else 'fail'} {self.name}: {self.detail}"


class Readiness:
    def __init__(self, pool: asyncpg.Pool, worker: Worker) -> None:
        self._pool = pool
        self._worker = worker

    async def checks(self) -> list[Check]:
        return list(await asyncio.gather(self.postgresql(), self.temporal(), log_appends(self._pool)))

    async def postgresql(self) -> Check:
        return await postgresql(self._pool)

    async def temporal(self) -> Check:
        worker = self._worker
        queue = worker.task_queue
        if not worker.is_running or worker.is_shutdown:
            return Check("temporal", False, f"the worker is not polling task queue {queue!r}")
        found = await temporal(worker.client)
        if not found.ok:
            return found
        return Check("temporal", True, f"the worker polls task queue {queue!r} on {found.detail}")


async def postgresql(pool: asyncpg.Pool) -> Check:
    try:
        async with asyncio.timeout(CHECK_TIMEOUT):
            await pool.fetchval("SELECT 1")
    except TimeoutError:
        return Check("postgresql", False, f"no answer within {CHECK_TIMEOUT:g} s")
    except DATABASE_ERRORS as exc:
        return Check("postgresql", False, f"cannot query: {type(exc).__name__}: {exc}")
    return Check("postgresql", True, "answers")


async def temporal(client: Client) -> Check:
    """Whether the Temporal server answers and serves workflows (its detail: where, when it does)."""
    service = client.service_client
    where = service.config.target_host
    try:
        serving = await service.check_health(timeout=timedelta(seconds=CHECK_TIMEOUT))
    except (RPCError, RuntimeError) as exc:
        return Check("temporal", False, f"{where} does not answer: {exc}")
    if not serving:
        return Check("temporal", False, f"{where} answers but does not serve workflows")
    return Check("temporal", True, where)


async def log_appends(pool: asyncpg.Pool, grace: float = LOG_FAILURE_GRACE) -> Check:
    """Fails while some deal's log lacks events whose append has failed for over `grace` seconds
    (the web app's /readyz runs it too)."""
    try:
        async with asyncio.timeout(CHECK_TIMEOUT):
            failing, oldest = await log_failures.count(pool)
    except TimeoutError:
        return Check("event-log", False, f"no answer within {CHECK_TIMEOUT:g} s")
    except DATABASE_ERRORS as exc:
        return Check("event-log", False, f"cannot query: {type(exc).__name__}: {exc}")
    if failing and oldest > grace:
        return Check(
            "event-log",
            False,
            f"{failing} deals' appends are failing, the oldest for {oldest:.0f} s: see 'dealflow audit verify --all'",
        )
    return Check("event-log", True, "appends go through" if not failing else f"{failing} appends retrying")
