"""PostgreSQL dies, or comes back older than it was: the log loses nothing it acknowledged, and
what it lacks it takes back from Temporal's history.

Each test runs a PostgreSQL of its own, with durable commits as dealflow starts it everywhere,
and a worker in a process of its own.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from pathlib import Path

import asyncpg
import pytest
from temporalio.client import Client

from app import audit_service
from client.api import DealflowClient, DealflowError
from definitions.loader import load_file, shipped
from store import event_log, registry
from store.db import DATABASE_ERRORS, connect_pool
from store.embedded import EmbeddedPostgres, free_port
from store.migrations import migrate
from tests.support.cli import dealflow
from tests.support.resilience import WorkerProcess, compare_logs, log_complete, until
from worker.settings import Settings

pytestmark = pytest.mark.slow

FACTS = {"buying_process_started": "yes"}


def _copy(src: Path, dst: Path) -> None:
    """A data directory copied with its owner (the server runs as its own user under root)."""
    shutil.copytree(src, dst)
    owner = src.stat()
    for path in [dst, *dst.rglob("*")]:
        os.chown(path, owner.st_uid, owner.st_gid)


@dataclass
class Stack:
    pg: EmbeddedPostgres
    pool: asyncpg.Pool
    client: DealflowClient
    worker: WorkerProcess
    env: dict[str, str]


@pytest.fixture
async def stack(
    temporal_client: Client, settings: Settings, cli_env: dict[str, str], tmp_path: Path
) -> AsyncIterator[Stack]:
    pg = EmbeddedPostgres(tmp_path / "pg", port=free_port())  # durable, as dealflow runs it
    pg.start()
    pool = await connect_pool(pg.url, max_size=8)
    ours = replace(settings, database_url=pg.url, task_queue=f"crash-{uuid.uuid4().hex[:6]}", log_flush_seconds=0)
    env = {
        **cli_env,
        "DATABASE_URL": pg.url,
        "DEALFLOW_TASK_QUEUE": ours.task_queue,
        "DEALFLOW_HOME": str(tmp_path / "home"),
    }
    worker = WorkerProcess(env, tmp_path / "worker.log")
    try:
        await migrate(pool)
        for path in shipped():
            await registry.deploy(pool, load_file(path), deployed_by="tests")
        worker.start()
        yield Stack(pg, pool, DealflowClient(temporal_client, pool, ours), worker, env)
    finally:
        worker.stop()
        await pool.close()
        pg.stop()


async def test_a_killed_postgresql_loses_no_acknowledged_event(stack: Stack) -> None:
    """Reps act while the server is killed with SIGKILL: every action answered before the kill is
    in the log after the restart, and every log verifies."""
    client, pool = stack.client, stack.pool
    deals = [f"kill9-{uuid.uuid4().hex[:6]}-{n}" for n in range(6)]
    for deal_id in deals:
        await client.start_deal("three-phase", deal_id, "pia")
    acknowledged: dict[str, int] = {}
    for deal_id in deals[:3]:  # acknowledged: answered, and read back from the log
        result = await client.lose(deal_id, "price", actor="pia")
        await client.events(deal_id, min_seq=result.last_seq)
        acknowledged[deal_id] = result.last_seq
    assert [await event_log.last_seq(pool, d) for d in acknowledged] == list(acknowledged.values())

    # more actions in flight while the server dies
    moving = [
        asyncio.create_task(client.complete_stage(d, "first-contact", actor="pia", facts=FACTS)) for d in deals[3:]
    ]
    await asyncio.sleep(0.05)
    stack.pg.kill()
    await asyncio.gather(*moving, return_exceptions=True)
    stack.pg.start()

    async def readable() -> bool:
        try:
            return all([await event_log.last_seq(pool, d) >= n for d, n in acknowledged.items()])
        except DATABASE_ERRORS:
            return False

    await until(readable, 60, "PostgreSQL back")
    for deal_id, last in acknowledged.items():
        assert await event_log.last_seq(pool, deal_id) == last, f"{deal_id}: an acknowledged event was lost"
    await until(lambda: log_complete(client, pool, deals), 90, "the log catching up after the restart")
    check = await compare_logs(client, pool, deals)
    assert check.lost == check.duplicated == 0 and not check.mismatched, check.mismatched
    for deal_id in deals:
        verdict = await audit_service.verify_running(client, deal_id)
        assert verdict.ok, (deal_id, verdict.problems)


async def test_a_log_restored_older_than_the_history_takes_the_rest_back_from_it(stack: Stack) -> None:
    """The database comes back from a backup taken before some batches were written (as after a
    failover to a replica that trailed): a running deal's next append fills what its log lacks
    from Temporal's history, and `audit repair` fills the logs of deals that append no more."""
    client, pool = stack.client, stack.pool
    running, ended = f"restore-{uuid.uuid4().hex[:6]}-run", f"restore-{uuid.uuid4().hex[:6]}-end"
    for deal_id in (running, ended):
        await client.start_deal("three-phase", deal_id, "pia")
    await until(lambda: log_complete(client, pool, [running, ended]), 30, "the starts logged")

    # the backup: the data directory as it is now, with the server stopped
    backup = stack.pg.data_dir.with_name("backup")
    await pool.expire_connections()
    stack.pg.stop()
    _copy(stack.pg.data_dir, backup)
    stack.pg.start()
    done = await client.complete_stage(running, "first-contact", actor="pia", facts=FACTS)
    lost = await client.lose(ended, "price", actor="pia")
    await client.events(running, min_seq=done.last_seq)
    await client.events(ended, min_seq=lost.last_seq)

    # restored: both logs end where the backup was taken
    stack.pg.stop()
    shutil.rmtree(stack.pg.data_dir)
    _copy(backup, stack.pg.data_dir)
    stack.pg.start()
    await pool.expire_connections()
    assert await event_log.last_seq(pool, running) == 2 and await event_log.last_seq(pool, ended) == 2
    missing = await audit_service.verify_running(client, ended)
    assert [f.code for f in missing.findings] == ["missing_from_log"]

    # the running deal appends again: its gap is filled first
    later = await client.complete_stage(
        running, "demonstration", actor="pia", facts={"will_buy": "yes", "decision_maker": "Ann"}
    )
    await client.events(running, min_seq=later.last_seq)
    assert (await audit_service.verify_running(client, running)).ok

    # the ended deal never appends again: the auditor repairs it
    repaired = await dealflow(stack.env, "audit", "repair", ended, "--json")
    assert repaired.code == 0, repaired.err
    assert repaired.json() == [{"deal_id": ended, "appended": lost.last_seq - 2}]
    assert (await audit_service.verify_running(client, ended)).ok
    assert (await client.status(ended)).state.status == "lost"
    again = await dealflow(stack.env, "audit", "repair", ended, "--json")
    assert again.json() == [{"deal_id": ended, "appended": 0}], "a repair of a whole log appends nothing"
    with pytest.raises(DealflowError) as unknown:
        await audit_service.repair(client, f"never-{uuid.uuid4().hex[:6]}")
    assert unknown.value.code == "cannot_repair"
