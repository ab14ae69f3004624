"""Crashes and outages, on loopback and bounded in time: a worker killed with SIGKILL at random
moments, the Temporal server stopped and restarted on its persisted state, PostgreSQL stopped
for a while. Each test prints its counts and asserts that nothing was lost or duplicated.

The kill points are random; set DEALFLOW_CRASH_SEED to rerun one exactly, or to try others.
Readers poll statuses, lists and metrics and an auditor verifies every log against its history
while the workers die; every read goes to PostgreSQL, never to a workflow query.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
import uuid
from collections import Counter
from dataclasses import replace
from pathlib import Path

import asyncpg
import pytest
import yaml
from temporalio.client import Client, WorkflowExecutionStatus

from app.audit_service import verify_running
from audit.history import fetch_deal
from audit.replay import replay
from client.api import DealflowClient
from definitions.loader import PinnedDefinition, load_file, shipped
from domain.commands import workflow_id
from domain.events import TouchSent
from domain.state import DealState, fold
from store import event_log, registry
from store.db import connect_pool
from store.embedded import EmbeddedPostgres, free_port
from store.metrics import Filters, compute
from store.migrations import migrate
from tests.support.cli import dealflow
from tests.support.resilience import CountingReceiver, WorkerProcess, compare_logs, log_complete, until
from worker.connect import connect_temporal
from worker.devserver import TemporalDevServer
from worker.settings import Settings

pytestmark = pytest.mark.slow

SEED = int(os.environ.get("DEALFLOW_CRASH_SEED") or random.randrange(10**6))
SCALE = 0.0003  # an hour between touches passes in about a second


def _worker_env(cli_env: dict[str, str], settings: Settings, tmp: Path, **extra: str) -> dict[str, str]:
    return {
        **cli_env,
        "TEMPORAL_ADDRESS": settings.temporal_address,
        "DATABASE_URL": settings.database_url,
        "DEALFLOW_TASK_QUEUE": settings.task_queue,
        "DEALFLOW_HOME": str(tmp / "home"),
        **extra,
    }


async def _diagnose(client: DealflowClient, deal_id: str) -> str:
    """What a stuck deal and its cadence are waiting for, for the failure message."""
    lines = []
    for wf_id in (workflow_id(deal_id), f"cadence-{deal_id}/five#1"):
        try:
            handle = client.temporal.get_workflow_handle(wf_id)
            described = await handle.describe()
            history = await handle.fetch_history()
        except Exception as exc:
            lines.append(f"{wf_id}: {exc}")
            continue
        kinds = [e.event_type for e in history.events]
        failed = [e for e in history.events if e.HasField("workflow_task_failed_event_attributes")]
        lines.append(
            f"{wf_id}: {described.status}, {len(kinds)} events, last {kinds[-1]}, "
            f"{len(failed)} failed workflow tasks"
            + (f" (last: {failed[-1].workflow_task_failed_event_attributes.failure.message[:300]})" if failed else "")
        )
    return "\n".join(lines)


async def _ended(client: DealflowClient, deal_ids: list[str]) -> bool:
    for deal_id in deal_ids:
        described = await client.temporal.get_workflow_handle(workflow_id(deal_id)).describe()
        if described.status != WorkflowExecutionStatus.COMPLETED:
            return False
    return True


class Readers:
    """What a dashboard, reps and an auditor do while workers die: read statuses, lists and
    metrics, verify every deal's log against its history, and watch that no logged row ever
    changes. Every read goes to PostgreSQL (and the verifier to Temporal's history)."""

    def __init__(self, client: DealflowClient, pool: asyncpg.Pool, crash: PinnedDefinition, deals: list[str]):
        self.client, self.pool, self.crash, self.deals = client, pool, crash, deals
        self.stop = asyncio.Event()
        self.reads: Counter[str] = Counter()
        self.errors: list[str] = []
        self.verifications = 0
        self.problems: list[str] = []
        self.seen: dict[tuple[str, int], str] = {}
        self.rewritten: list[str] = []

    async def run(self) -> None:
        await asyncio.gather(self._read(), self._verify(), self._watch_rows())

    async def _read(self) -> None:
        rng = random.Random(SEED)
        while not self.stop.is_set():
            deal = rng.choice(self.deals)
            try:
                await self.client.status(deal)
                self.reads["status"] += 1
                await self.client.list_deals(process=self.crash.name)
                self.reads["list"] += 1
                await compute(self.pool, self.crash.definition, Filters(process=self.crash.name))
                self.reads["metrics"] += 1
            except Exception as exc:
                self.errors.append(f"{deal}: {exc!r}")
            await asyncio.sleep(0.05)

    async def _verify(self) -> None:
        while not self.stop.is_set():
            for deal in self.deals:
                verdict = await verify_running(self.client, deal)
                self.verifications += 1
                self.problems += [f"{deal}: {p}" for p in verdict.problems]

    async def _watch_rows(self) -> None:
        while not self.stop.is_set():
            rows = await self.pool.fetch(
                "SELECT deal_id, seq, hash FROM deal_events WHERE deal_id = ANY($1::text[])", self.deals
            )
            now = {(r["deal_id"], r["seq"]): r["hash"] for r in rows}
            self.rewritten += [f"{d} seq {n}" for (d, n), h in self.seen.items() if now.get((d, n)) != h]
            self.seen.update(now)
            await asyncio.sleep(0.2)


async def _divergent(client: DealflowClient, pool: asyncpg.Pool, deal_ids: list[str]) -> list[str]:
    """Deals whose workflow ended in another state than the fold of their logged events."""
    out = []
    for deal_id in deal_ids:
        ended = await client.temporal.get_workflow_handle(workflow_id(deal_id), result_type=DealState).result()
        if ended != fold(await event_log.read(pool, deal_id)):
            out.append(deal_id)
    return out


async def test_worker_killed_at_random_during_cadences_while_readers_poll(
    temporal_client: Client,
    pool: asyncpg.Pool,
    settings: Settings,
    cli_env: dict[str, str],
    deployed: dict[str, PinnedDefinition],
    tmp_path: Path,
) -> None:
    rng = random.Random(SEED)
    receiver = CountingReceiver()
    await receiver.start()
    channels = tmp_path / "channels.yaml"
    channels.write_text(yaml.safe_dump({"channels": {"email": {"type": "webhook", "url": receiver.url}}}))
    queue = f"crash-{uuid.uuid4().hex[:6]}"
    ours = replace(settings, task_queue=queue)
    worker = WorkerProcess(
        _worker_env(cli_env, ours, tmp_path, DEALFLOW_CHANNELS_FILE=str(channels)), tmp_path / "worker.log"
    )
    client = DealflowClient(temporal_client, pool, ours)
    deals = [f"crash-{uuid.uuid4().hex[:6]}-{n}" for n in range(10)]
    worker.start()
    readers = Readers(client, pool, deployed["crash"], deals)
    try:
        for deal_id in deals:
            await client.start_deal("crash", deal_id, "kim", fields={"customer": deal_id}, time_scale=SCALE)
        reading = asyncio.create_task(readers.run())

        async def drive(deal_id: str) -> None:
            async def five_touches() -> bool:  # from the projection, as a rep's listing would
                touches = await pool.fetchval("SELECT touches FROM deals WHERE deal_id = $1", deal_id)
                return bool(touches is not None and touches >= 5)

            try:
                await until(five_touches, 150, f"{deal_id} got its five touches")
            except AssertionError as exc:
                raise AssertionError(f"{exc}\n{await _diagnose(client, deal_id)}") from None
            await client.complete_stage(deal_id, "call", actor="kim")
            await client.win(deal_id, actor="kim")

        async def killer() -> None:
            for _ in range(4):
                await asyncio.sleep(rng.uniform(0.5, 3.0))
                worker.kill()
                worker.start()

        await asyncio.gather(killer(), *(drive(d) for d in deals))
        await until(lambda: _ended(client, deals), 60, "every deal's workflow completed")
        await until(lambda: log_complete(client, pool, deals), 60, "every event in the log")
        readers.stop.set()
        await reading
        histories = [h for d in deals for h in await fetch_deal(client.temporal, d)]
        replayed = await replay(histories)
        nondeterministic = [f"{r.workflow_id}: {r.error}" for r in replayed if not r.ok]
        divergent = await _divergent(client, pool, deals)
        check = await compare_logs(client, pool, deals)
        sent = await pool.fetch(
            "SELECT deal_id, touch_no, status FROM outbox WHERE kind = 'touch' AND deal_id = ANY($1::text[])", deals
        )
        touch_events = [
            (e.cadence_run, e.touch_no)
            for d in deals
            for e in await event_log.read(pool, d)
            if isinstance(e, TouchSent)
        ]
        keys = [k for k in receiver.deliveries if any(k.startswith(f"{d}/") or f"/{d}/" in k for d in deals)] or list(
            receiver.deliveries
        )
        expected = 5 * len(deals)
        lost_touches = expected - len(set(touch_events))
        duplicated_touches = len(touch_events) - len(set(touch_events))
        redelivered = sum(n - 1 for n in receiver.deliveries.values())
        print(
            f"\nseed {SEED}: {len(deals)} deals, {check.events} events, {worker.kills} kills (SIGKILL); "
            f"events lost {check.lost}, duplicated {check.duplicated}; touches expected {expected}, "
            f"recorded {len(touch_events)}, outbox sent {sum(r['status'] == 'sent' for r in sent)}, "
            f"delivered keys {len(keys)}, lost {lost_touches}, duplicated {duplicated_touches}, "
            f"redelivered with the same idempotency key {redelivered}; readers: {dict(readers.reads)} "
            f"({len(readers.errors)} errors), {readers.verifications} verifications "
            f"({len(readers.problems)} problems), {len(readers.seen)} rows watched ({len(readers.rewritten)} "
            f"rewritten); {len(replayed)} histories replayed ({len(nondeterministic)} nondeterministic), "
            f"{len(divergent)} divergent states"
        )
        assert readers.errors == [] and readers.problems == [] and readers.rewritten == []
        assert min(readers.reads.values()) > 0 and readers.verifications >= len(deals)
        assert nondeterministic == [] and divergent == []
        assert len(replayed) == 2 * len(deals)  # every deal's run, and its cadence's
        assert check.lost == check.duplicated == 0 and not check.mismatched, check
        assert lost_touches == duplicated_touches == 0
        assert len(sent) == expected and all(r["status"] == "sent" for r in sent)
        assert len(receiver.deliveries) == expected, "every touch reached the channel, each under its own key"
        assert redelivered <= worker.kills, "a redelivery only after a kill between sending and recording"
    finally:
        readers.stop.set()
        worker.stop()
        await receiver.stop()


async def test_temporal_server_stopped_and_restarted_mid_batch(
    pool: asyncpg.Pool,
    settings: Settings,
    cli_env: dict[str, str],
    deployed: dict[str, PinnedDefinition],
    tmp_path: Path,
) -> None:
    server = TemporalDevServer(tmp_path / "temporal.db", port=free_port(), ui_port=None, log_file=tmp_path / "t.log")
    server.start()
    ours = replace(settings, temporal_address=server.address, task_queue=f"restart-{uuid.uuid4().hex[:6]}")
    worker = WorkerProcess(_worker_env(cli_env, ours, tmp_path), tmp_path / "worker.log")
    worker.start()
    try:
        client = DealflowClient(await connect_temporal(ours), pool, ours)
        deals = [f"restart-{uuid.uuid4().hex[:6]}-{n}" for n in range(8)]
        for deal_id in deals:
            await client.start_deal("three-phase", deal_id, "tor")
            await client.complete_stage(deal_id, "first-contact", actor="tor", facts={"buying_process_started": "yes"})
        server.stop()  # mid-batch: every deal is open, half-way
        await asyncio.sleep(2)
        server.start()
        for deal_id in deals:
            await client.complete_stage(
                deal_id, "demonstration", actor="tor", facts={"will_buy": "yes", "decision_maker": "Ann"}
            )
            await client.win(deal_id, actor="tor", facts={"signed_value": "5000"})
            await client.complete_stage(deal_id, "implementation", actor="tor", facts={"live": "yes"})
        await until(lambda: _ended(client, deals), 60, "every deal's workflow completed")
        await until(lambda: log_complete(client, pool, deals), 60, "every event in the log")
        histories = [h for d in deals for h in await fetch_deal(client.temporal, d)]
        replayed = await replay(histories)
        nondeterministic = [f"{r.workflow_id}: {r.error}" for r in replayed if not r.ok]
        divergent = await _divergent(client, pool, deals)
        check = await compare_logs(client, pool, deals)
        print(
            f"\n{check.deals} deals, {check.events} events, 1 Temporal restart; "
            f"lost {check.lost}, duplicated {check.duplicated}; {len(replayed)} histories replayed "
            f"({len(nondeterministic)} nondeterministic), {len(divergent)} divergent states"
        )
        assert check.lost == check.duplicated == 0 and not check.mismatched
        assert nondeterministic == [] and divergent == []
        for deal_id in deals:
            assert (await client.status(deal_id)).state.status == "won"
    finally:
        worker.stop()
        server.stop()


async def test_postgresql_stopped_for_a_while_mid_batch(
    temporal_client: Client, settings: Settings, cli_env: dict[str, str], tmp_path: Path
) -> None:
    pg = EmbeddedPostgres(tmp_path / "pg", port=free_port())
    pg.start()
    pool = await connect_pool(pg.url, max_size=4)
    ours = replace(settings, database_url=pg.url, task_queue=f"pgdown-{uuid.uuid4().hex[:6]}")
    worker = WorkerProcess(_worker_env(cli_env, ours, tmp_path), tmp_path / "worker.log")
    try:
        await migrate(pool)
        for path in shipped():
            await registry.deploy(pool, load_file(path), deployed_by="tests")
        worker.start()
        client = DealflowClient(temporal_client, pool, ours)
        deals = [f"pgdown-{uuid.uuid4().hex[:6]}-{n}" for n in range(8)]
        for deal_id in deals:
            await client.start_deal("three-phase", deal_id, "pia")
        await until(lambda: log_complete(client, pool, deals), 30, "the first events logged")
        pg.stop()  # the log is gone; reps keep working: their events are in Temporal
        outage = time.monotonic()
        for deal_id in deals:
            await client.complete_stage(deal_id, "first-contact", actor="pia", facts={"buying_process_started": "yes"})
            await client.complete_stage(
                deal_id, "demonstration", actor="pia", facts={"will_buy": "yes", "decision_maker": "Ann"}
            )
        # outcomes are appended inside the rep's workflow task: with the database down, the
        # append falls back to retrying on a timer and the rep still gets an answer
        answered: list[float] = []

        async def lose(deal_id: str) -> None:
            asked = time.monotonic()
            result = await client.lose(deal_id, "price", actor="pia")
            answered.append(time.monotonic() - asked)
            assert result.status == "lost"

        await asyncio.gather(*(lose(deal_id) for deal_id in deals[:4]))
        await asyncio.sleep(max(0.0, 6 - (time.monotonic() - outage)))
        pg.start()
        down = time.monotonic() - outage
        await until(lambda: log_complete(client, pool, deals), 90, "the log catching up after the outage")
        caught_up = time.monotonic() - outage - down
        check = await compare_logs(client, pool, deals)
        print(
            f"\n{check.deals} deals, {check.events} events, PostgreSQL down {down:.1f} s, {len(answered)} losses "
            f"answered in at most {max(answered):.1f} s, log complete {caught_up:.1f} s after it returned; "
            f"lost {check.lost}, duplicated {check.duplicated}"
        )
        assert check.lost == check.duplicated == 0 and not check.mismatched
        statuses = await pool.fetch("SELECT status FROM deals WHERE deal_id = ANY($1::text[])", deals[:4])
        assert [r["status"] for r in statuses] == ["lost"] * 4
    finally:
        worker.stop()
        await pool.close()
        pg.stop()


OUTCOME_ROW = "SELECT seq, hash FROM deal_events WHERE deal_id = $1 AND type = 'DealLost'"


@pytest.mark.usefixtures("deployed")
async def test_worker_killed_after_appending_an_outcome_before_reporting_it(
    temporal_client: Client, pool: asyncpg.Pool, settings: Settings, cli_env: dict[str, str], tmp_path: Path
) -> None:
    """An outcome's append commits, and its worker dies before reporting back. The append is an
    activity whose batch Temporal recorded before it ran, so its retry on another worker carries
    the very same events: it writes nothing, no row of the log changes, and the audit passes."""
    ours = replace(settings, task_queue=f"stall-{uuid.uuid4().hex[:6]}")
    env = _worker_env(cli_env, ours, tmp_path)
    stalling = WorkerProcess(env, tmp_path / "stalling.log", command=("tests.support.stalling_worker",))
    worker = WorkerProcess(env, tmp_path / "worker.log")
    client = DealflowClient(temporal_client, pool, ours)
    deal_id = f"stall-{uuid.uuid4().hex[:8]}"
    rows = "SELECT seq, payload::text, hash FROM deal_events WHERE deal_id = $1 ORDER BY seq"
    try:
        stalling.start()
        await client.start_deal("three-phase", deal_id, "pia")
        losing = asyncio.create_task(client.lose(deal_id, "price", actor="pia"))

        async def outcome_logged() -> bool:
            return await pool.fetchrow(OUTCOME_ROW, deal_id) is not None

        await until(outcome_logged, 30, "the outcome appended by the stalling worker")
        logged = await pool.fetch(rows, deal_id)
        stalling.kill()
        worker.start()
        lost = await asyncio.wait_for(losing, 60)
        assert lost.status == "lost"
        await until(lambda: log_complete(client, pool, [deal_id]), 60, "the log after the append's retry")
        check = await compare_logs(client, pool, [deal_id])
        after = await pool.fetch(rows, deal_id)
        print(
            f"\n1 deal, {check.events} events, {stalling.kills} kill after the outcome's append; "
            f"rows changed: {sum(1 for a, b in zip(logged, after, strict=False) if a != b)}; "
            f"lost {check.lost}, duplicated {check.duplicated}"
        )
        assert check.lost == check.duplicated == 0 and not check.mismatched, check.mismatched
        assert after[: len(logged)] == logged  # the retry changed no row
        verified = await dealflow(cli_env, "audit", "verify", deal_id)
        assert verified.code == 0, verified.out + verified.err
    finally:
        stalling.stop()
        worker.stop()
