"""Reps on the HTTP API while the web server, PostgreSQL and the worker are each killed with
SIGKILL and restarted: every write a rep was answered for is in the log once, every log verifies,
and no Idempotency-Key is left stuck in progress.

Each rep repeats a request under its own Idempotency-Key until it gets an answer (through
connection errors, 503s and 429s, as the Retry-After says), as a client of the API should. The
servers listen on loopback only; the loops are bounded in count and time.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import httpx
import pytest
from temporalio.client import Client

from app import audit_service
from client.api import DealflowClient
from definitions.loader import load_file, shipped
from store import event_log, registry
from store.db import connect_pool
from store.embedded import EmbeddedPostgres, free_port
from store.migrations import migrate
from tests.support.resilience import WorkerProcess, compare_logs, log_complete
from worker.settings import Settings

pytestmark = pytest.mark.slow

REPS = 12
REQUEST_BOUND = 120.0  # seconds a rep keeps repeating one request before the test fails
RETRIED = {429, 503, 409}  # 409 only as request_in_progress: another copy of the request runs


@dataclass
class Tally:
    answered: dict[str, Any] = field(default_factory=dict)  # idempotency key -> final answer
    statuses: Counter[int] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)


async def _until_answered(api: httpx.AsyncClient, tally: Tally, path: str, body: dict[str, Any], key: str) -> Any:
    deadline = time.monotonic() + REQUEST_BOUND
    while time.monotonic() < deadline:
        try:
            answer = await api.post(path, json=body, headers={"Idempotency-Key": key}, timeout=30)
        except httpx.TransportError as exc:  # the web server is down, or died mid-request
            tally.errors[type(exc).__name__] += 1
            await asyncio.sleep(0.5)
            continue
        tally.statuses[answer.status_code] += 1
        if answer.status_code in RETRIED and (
            answer.status_code != 409 or answer.json()["code"] == "request_in_progress"
        ):
            await asyncio.sleep(float(answer.headers.get("retry-after", "0.5")))
            continue
        assert answer.status_code in (200, 201, 202), f"{path}: {answer.status_code} {answer.text}"
        tally.answered[key] = answer.json()
        return answer.json()
    raise AssertionError(f"{path} under key {key} not answered in {REQUEST_BOUND:.0f} s")


async def _rep(base: str, deal_id: str, tally: Tally, rng: random.Random) -> None:
    async with httpx.AsyncClient(base_url=base, headers={"X-Dealflow-User": "pia"}) as api:
        await asyncio.sleep(rng.uniform(0, 3))  # reps arrive over a few seconds
        start = {"process": "three-phase", "deal_id": deal_id}
        await _until_answered(api, tally, "/api/v1/deals", start, f"s-{deal_id}")
        steps: list[tuple[str, dict[str, Any]]] = [
            ("complete", {"stage": "first-contact", "facts": {"buying_process_started": "yes"}}),
            ("complete", {"stage": "demonstration", "facts": {"will_buy": "yes", "decision_maker": "Ann"}}),
            ("lose", {"reason": "price"}),
        ]
        for n, (action, body) in enumerate(steps):
            await asyncio.sleep(rng.uniform(0.3, 1.5))
            await _until_answered(api, tally, f"/api/v1/deals/{deal_id}/{action}", body, f"a{n}-{deal_id}")


class WebProcess(WorkerProcess):
    def __init__(self, env: dict[str, str], log: Path, port: int) -> None:
        super().__init__(env, log, command=("cli.main", "serve", "--port", str(port)))
        self.base = f"http://127.0.0.1:{port}"

    async def ready(self) -> None:
        async with httpx.AsyncClient(base_url=self.base) as probe:
            for _ in range(200):
                try:
                    if (await probe.get("/livez")).status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.1)
        raise AssertionError(f"the web server did not answer; see {self.log}")


async def test_reps_on_the_api_lose_nothing_when_each_server_is_killed(
    temporal_client: Client, settings: Settings, cli_env: dict[str, str], tmp_path: Path
) -> None:
    pg = EmbeddedPostgres(tmp_path / "pg", port=free_port())
    pg.start()
    pool = await connect_pool(pg.url, max_size=8)
    ours = replace(settings, database_url=pg.url, task_queue=f"faults-{uuid.uuid4().hex[:6]}")
    env = {
        **cli_env,
        "DATABASE_URL": pg.url,
        "DEALFLOW_TASK_QUEUE": ours.task_queue,
        "DEALFLOW_HOME": str(tmp_path / "home"),
        "DEALFLOW_REQUEST_DEADLINE_SECONDS": "6",
    }
    worker = WorkerProcess(env, tmp_path / "worker.log")
    web = WebProcess(env, tmp_path / "web.log", free_port())
    kills: Counter[str] = Counter()
    try:
        await migrate(pool)
        for path in shipped():
            await registry.deploy(pool, load_file(path), deployed_by="tests")
        worker.start()
        web.start()
        await web.ready()
        tally = Tally()
        rng = random.Random(7)
        deals = [f"faults-{uuid.uuid4().hex[:6]}-{n}" for n in range(REPS)]
        reps = asyncio.gather(*(_rep(web.base, d, tally, random.Random(rng.random())) for d in deals))

        async def chaos() -> None:
            await asyncio.sleep(1.5)
            web.kill()
            kills["web"] += 1
            await asyncio.sleep(1.0)
            web.start()
            await web.ready()
            await asyncio.sleep(1.5)
            pg.kill()
            kills["postgresql"] += 1
            await asyncio.sleep(2.0)
            pg.start()
            await asyncio.sleep(1.5)
            worker.kill()
            kills["worker"] += 1
            await asyncio.sleep(1.0)
            worker.start()

        await asyncio.wait_for(asyncio.gather(reps, chaos()), timeout=400)
        client = DealflowClient(temporal_client, pool, ours)

        async def complete() -> bool:
            return await log_complete(client, pool, deals)

        deadline = time.monotonic() + 90
        while not await complete():
            assert time.monotonic() < deadline, "the log did not catch up"
            await asyncio.sleep(0.5)

        # every answered write is in the log, once
        for key, answer in tally.answered.items():
            deal_id = answer["deal_id"]
            events = await event_log.read(pool, deal_id)
            if key.startswith("s-"):
                assert events and events[0].type == "DealStarted", key
                continue
            mine = [e for e in events if e.request_id == key]
            shown = [(e.seq, e.type, e.request_id) for e in events]
            assert mine and mine[-1].seq == answer["last_seq"], f"{key}: answered {answer}, logged {shown}"
        check = await compare_logs(client, pool, deals)
        stuck = await pool.fetchval("SELECT count(*) FROM api_requests WHERE status = 0")
        verdicts = [await audit_service.verify_running(client, d) for d in deals]
        print(
            f"\n{REPS} reps, {len(tally.answered)} writes answered, kills {dict(kills)}; HTTP answers "
            f"{dict(tally.statuses)}, transport errors {dict(tally.errors)}; {check.events} events, "
            f"lost {check.lost}, duplicated {check.duplicated}; keys stuck in progress {stuck}"
        )
        assert len(tally.answered) == REPS * 4
        assert check.lost == check.duplicated == 0 and not check.mismatched, check.mismatched
        assert [v.deal_id for v in verdicts if not v.ok] == [], [v.problems for v in verdicts if not v.ok]
        assert stuck == 0
        statuses = await pool.fetch("SELECT status FROM deals WHERE deal_id = ANY($1::text[])", deals)
        assert [r["status"] for r in statuses] == ["lost"] * REPS
    finally:
        web.stop()
        worker.stop()
        await pool.close()
        pg.stop()
