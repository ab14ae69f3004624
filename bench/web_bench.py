"""The web app and the HTTP API against the calls they make, side by side in one run.

- A rep's action (completing a stage) through the HTTP API, served by `dealflow serve` in a
  process of its own, against the same action through the Python client: p50 and p99.
- The pipeline board of one process with 10,000 open deals, the whole page over HTTP, against
  the projection query it needs (`store.deals.board`).
- The dashboard over the event log, the whole page over HTTP, against the metrics calls it
  makes, made directly (`app.dashboard_service`).

Each pair alternates round by round, so both sides see the same machine. Results go to
bench/results/web.json; `make bench` runs it with the dashboard over 300,000 events, `make
bench-org` over 1,000,000 (bench/results/web-org.json).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from bench.stack import BenchStack, bench_main, bench_stack
from cli.demo import fact_value
from client.api import DealflowClient
from store.deals import DEAL_COLUMNS
from store.embedded import free_port


@dataclass(frozen=True)
class Sizes:
    actions: int  # rounds of the rep's action
    open_deals: int  # on the board
    board_rounds: int
    events: int  # in the dashboard's log
    dashboard_rounds: int


SIZES = {
    "tiny": Sizes(5, 100, 3, 5_000, 2),
    "quick": Sizes(30, 1_000, 10, 100_000, 3),
    "default": Sizes(200, 10_000, 30, 300_000, 5),
    "org": Sizes(200, 10_000, 30, 1_000_000, 5),
}


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def serve_process(stack: BenchStack, queue: str, port: int) -> subprocess.Popen[bytes]:
    """`dealflow serve` on `port`, in a process of its own, as deployed."""
    env = {
        **os.environ,
        "TEMPORAL_ADDRESS": stack.server.address,
        "DATABASE_URL": stack.pg.url,
        "DEALFLOW_TASK_QUEUE": queue,
        "DEALFLOW_HOME": str(stack.tmp / "home-web"),
        "DEALFLOW_WEB_PORT": str(port),
    }
    env.pop("DEALFLOW_IDENTITIES", None)
    env.pop("DEALFLOW_ACCESS_FILE", None)
    return stack.process([sys.executable, "-m", "cli.main", "serve"], env=env, log=stack.tmp / "web.log")


async def until_up(http: httpx.AsyncClient, proc: subprocess.Popen[bytes]) -> None:
    for _ in range(300):
        if proc.poll() is not None:
            raise SystemExit(f"dealflow serve exited with {proc.returncode}")
        try:
            if (await http.get("/api/v1/me")).status_code == 200:
                return
        except httpx.TransportError:
            pass
        await asyncio.sleep(0.1)
    raise SystemExit("dealflow serve did not answer within 30 s")


async def alternate(
    rounds: int, ours: Callable[[], Awaitable[None]], reference: Callable[[], Awaitable[None]]
) -> tuple[list[float], list[float]]:
    a: list[float] = []
    b: list[float] = []
    for n in range(rounds):
        pair = ((ours, a), (reference, b))
        for fn, out in pair if n % 2 == 0 else pair[::-1]:  # each goes first every other round
            started = time.perf_counter()
            await fn()
            out.append(time.perf_counter() - started)
    return a, b


def summary(web: list[float], ref: list[float], names: tuple[str, str]) -> dict[str, Any]:
    return {
        f"{names[0]}_p50_ms": round(pct(web, 0.5) * 1000, 2),
        f"{names[0]}_p99_ms": round(pct(web, 0.99) * 1000, 2),
        f"{names[1]}_p50_ms": round(pct(ref, 0.5) * 1000, 2),
        f"{names[1]}_p99_ms": round(pct(ref, 0.99) * 1000, 2),
        "ratio_p50": round(pct(web, 0.5) / pct(ref, 0.5), 3),
        "ratio_p99": round(pct(web, 0.99) / pct(ref, 0.99), 3),
        "rounds": len(web),
    }


async def rep_action(client: DealflowClient, http: httpx.AsyncClient, samples: int) -> dict[str, Any]:
    """Complete the first stage, then move back (not timed), again and again, on two deals."""
    seven = (await client.definition("seven-stage")).definition
    first = seven.stages[0]
    rng = random.Random(3)
    facts = {f.fact: fact_value(f, rng) for f in first.exit_criteria}
    ours, theirs = f"web-{uuid.uuid4().hex[:8]}", f"cli-{uuid.uuid4().hex[:8]}"
    for deal_id in (ours, theirs):
        await client.start_deal("seven-stage", deal_id, "rep")

    async def through_api() -> None:
        answer = await http.post(f"/api/v1/deals/{ours}/complete", json={"stage": first.id, "facts": facts})
        answer.raise_for_status()

    async def through_client() -> None:
        await client.complete_stage(theirs, first.id, actor="rep", facts=facts)

    api: list[float] = []
    direct: list[float] = []
    for n in range(samples):
        lead, follow = (through_api, through_client) if n % 2 == 0 else (through_client, through_api)
        a, b = await alternate(1, lead, follow)
        api += a if n % 2 == 0 else b
        direct += b if n % 2 == 0 else a
        back = await http.post(f"/api/v1/deals/{ours}/move", json={"to": first.id, "reason": "again"})
        back.raise_for_status()
        await client.move(theirs, first.id, actor="rep", reason="again")
    floor = []  # what any request costs: HTTP both ways, the app's middleware and the caller's identity
    for _ in range(samples):
        started = time.perf_counter()
        (await http.get("/api/v1/me")).raise_for_status()
        floor.append(time.perf_counter() - started)
    return summary(api, direct, ("api", "client")) | {"http_floor_p50_ms": round(pct(floor, 0.5) * 1000, 2)}


async def board(
    stack: BenchStack, client: DealflowClient, http: httpx.AsyncClient, deals: int, rounds: int
) -> dict[str, Any]:
    """Open deals of one process in the projection, spread over its stages and owners."""
    from app import board_service
    from store.deals import board as board_query

    pinned = await client.definition("seven-stage")
    stages = [s.id for s in pinned.definition.pre_sale]
    rng = random.Random(5)
    now = datetime.now(UTC)
    rows = [
        (
            f"board-{n:06d}",
            "seven-stage",
            pinned.version,
            f"rep-{rng.randrange(40)}",
            float(rng.randrange(1, 500) * 100),
            "open",
            rng.choice(stages),
            now - timedelta(minutes=rng.randrange(100_000)),
            now - timedelta(days=30),
            None,
            4,
            rng.randrange(6),
            f"rep-{rng.randrange(40)}",
            pinned.version,
        )
        for n in range(deals)
    ]
    async with stack.pool.acquire() as conn:
        await conn.copy_records_to_table("deals", records=rows, columns=DEAL_COLUMNS)
        await conn.execute("ANALYZE deals")
    probabilities = {(pinned.version, s.id): s.probability for s in pinned.definition.stages}

    async def page() -> None:
        answer = await http.get("/board", params={"process": "seven-stage"})
        answer.raise_for_status()

    async def query() -> None:
        await board_query(stack.pool, "seven-stage", probabilities, per_stage=board_service.PER_STAGE)

    await page()  # warm both
    await query()
    web, ref = await alternate(rounds, page, query)
    return summary(web, ref, ("page", "query")) | {"open_deals": deals}


async def dashboard(client: DealflowClient, http: httpx.AsyncClient, events: int, rounds: int) -> dict[str, Any]:
    """The deals of one process, loaded into the log by COPY as the metrics bench does, then the
    whole dashboard page against the calls it makes (`dashboard_service.dashboard`)."""
    from app import dashboard_service
    from app.metrics_service import MetricsQuery
    from bench.metrics_bench import load
    from definitions.loader import PinnedDefinition, content_hash
    from store import registry

    process, total, deals = await load(client.pool, events, seed=1)
    seven = (await client.definition("seven-stage")).definition.model_copy(update={"name": process})
    await registry.deploy(
        client.pool,
        PinnedDefinition(definition=seven, version="v1", content_hash=content_hash(seven), templates={}),
        deployed_by="bench",
    )

    async def page() -> None:
        (await http.get("/dashboard")).raise_for_status()

    async def calls() -> None:
        await dashboard_service.dashboard(client, MetricsQuery())

    await page()  # warm both
    await calls()
    web, ref = await alternate(rounds, page, calls)
    return summary(web, ref, ("page", "calls")) | {"events": total, "deals": deals}


async def run(size: Sizes, args: argparse.Namespace) -> dict[str, Any]:
    result: dict[str, Any] = {}
    async with bench_stack("webbench") as stack:
        queue = "web"
        client = DealflowClient(stack.temporal, stack.pool, stack.settings(queue))
        port = free_port()
        stack.worker_process(queue, log=stack.tmp / "worker.log")
        web = serve_process(stack, queue, port)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=120) as http:
            await until_up(http, web)
            print("a rep's action: API against the Python client", flush=True)
            result["rep_action"] = await rep_action(client, http, size.actions)
            print(f"the board of {size.open_deals:,} open deals against its query", flush=True)
            result["board"] = await board(stack, client, http, size.open_deals, size.board_rounds)
            print("the dashboard over the event log against the calls it makes", flush=True)
            result["dashboard"] = await dashboard(client, http, size.events, size.dashboard_rounds)
    return result


if __name__ == "__main__":
    bench_main(__doc__ or "", "web", SIZES, run)
