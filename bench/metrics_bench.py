"""Benchmark: the full metrics query over a million events, as a ratio to a sequential scan.

    .venv/bin/python -m bench.metrics_bench [--events 1000000] [--rounds 3]

Loads generated deals (the engine's own decisions, see `bench.generate`) into a fresh embedded
PostgreSQL (or `DATABASE_URL`, into a database it creates), then, interleaved round by round so
both see the same machine load, times (a) a plain sequential scan of the event table and (b) the
full metrics computation for the process: stages, phases and the deal set. It prints the median
times and their ratio and writes them to `bench/results/metrics.json`. Absolute times on a noisy
machine mean little; the ratio measured side by side is the figure to compare.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import random
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import asyncpg

from bench.generate import simulate
from definitions.loader import load_file, shipped
from domain.activity_io import DealSnapshot
from domain.state import fold
from store.db import connect_pool
from store.deals import DEAL_COLUMNS
from store.embedded import EmbeddedPostgres
from store.event_log import GENESIS, LOG_COLUMNS, canonical, chained
from store.metrics import Filters, compute
from store.migrations import migrate
from store.visits import VISIT_COLUMNS, DealVisits, advance, visit_records

RESULTS = Path(__file__).parent / "results"
SEQ_SCAN = "SELECT count(*), max(occurred_at), sum(length(stage)) FROM deal_events"


async def load(pool: asyncpg.Pool, target: int, seed: int) -> tuple[str, int, int]:
    pinned = load_file(next(p for p in shipped() if p.stem == "seven-stage"))
    d = pinned.definition.model_copy(update={"name": "bench-seven"})
    rng = random.Random(seed)
    total = deals = 0
    started = time.monotonic()
    while total < target:
        rows, projections, visit_rows = [], [], []
        for _ in range(2000):
            deal_id = f"bench-{deals:07d}"
            events = simulate(d, "v1", deal_id, rng)
            deals += 1
            payloads = [canonical(e) for e in events]
            for e, payload, (prev, digest) in zip(events, payloads, chained(GENESIS, payloads), strict=True):
                rows.append(
                    (
                        deal_id,
                        e.seq,
                        e.type,
                        e.at,
                        e.actor,
                        e.stage,
                        e.request_id,
                        d.name,
                        "v1",
                        payload,
                        prev,
                        digest,
                    )
                )
            visit_rows += visit_records(deal_id, d.name, advance(DealVisits(), events))
            s = DealSnapshot.of(fold(events))
            projections.append(
                (
                    s.deal_id,
                    s.process,
                    s.version,
                    s.owner,
                    s.value,
                    s.status,
                    s.stage,
                    s.stage_entered_at,
                    s.started_at,
                    s.ended_at,
                    s.last_seq,
                    s.touches,
                    s.owner,
                    s.version,
                )
            )
            total += len(events)
        async with pool.acquire() as conn:
            await conn.copy_records_to_table(
                "deal_events",
                records=rows,
                columns=LOG_COLUMNS,
            )
            await conn.copy_records_to_table(
                "deals",
                records=projections,
                columns=DEAL_COLUMNS,
            )
            await conn.copy_records_to_table("stage_visits", records=visit_rows, columns=VISIT_COLUMNS)
        print(f"\rloaded {total:,} events of {deals:,} deals ({time.monotonic() - started:.0f} s)", end="", flush=True)
    print()
    await pool.execute("VACUUM ANALYZE deal_events, deals, stage_visits")  # as autovacuum would
    return d.name, total, deals


async def timed(fn: Any) -> float:
    started = time.perf_counter()
    await fn()
    return time.perf_counter() - started


async def run(events: int, rounds: int, url: str | None) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="dealflow-bench-"))
    server = None
    if url is None:
        server = EmbeddedPostgres(tmp / "pg")
        server.start()
        url = server.url
    pool = await connect_pool(url, max_size=4)
    try:
        await migrate(pool)
        existing = await pool.fetchval("SELECT count(*) FROM deal_events WHERE process = 'bench-seven'")
        if existing:
            raise SystemExit("the database already holds bench data: point DATABASE_URL at an empty database")
        process, total, deals = await load(pool, events, seed=1)
        definition = load_file(next(p for p in shipped() if p.stem == "seven-stage")).definition
        definition = definition.model_copy(update={"name": process})

        async def scan() -> None:
            async with pool.acquire() as conn, conn.transaction():
                await conn.execute(
                    "SET LOCAL enable_indexscan = off; SET LOCAL enable_indexonlyscan = off;"
                    " SET LOCAL enable_bitmapscan = off"
                )
                await conn.fetchrow(SEQ_SCAN)

        async def metrics() -> None:
            await compute(pool, definition, Filters(process=process))

        await scan()  # warm the cache for both
        scans, metric_times = [], []
        for n in range(rounds):
            scans.append(await timed(scan))
            metric_times.append(await timed(metrics))
            print(f"round {n + 1}: seq scan {scans[-1]:.3f} s, metrics {metric_times[-1]:.3f} s", flush=True)
        size = await pool.fetchval("SELECT pg_size_pretty(pg_total_relation_size('deal_events'))")
    finally:
        await pool.close()
        if server is not None:
            server.stop()
    scan_s, metrics_s = statistics.median(scans), statistics.median(metric_times)
    return {
        "benchmark": "metrics over the event log",
        "events": total,
        "deals": deals,
        "table_size": size,
        "rounds": rounds,
        "seq_scan_seconds": round(scan_s, 4),
        "metrics_seconds": round(metrics_s, 4),
        "ratio_metrics_to_seq_scan": round(metrics_s / scan_s, 2),
        "machine": f"{platform.machine()}, {platform.system()}, Python {platform.python_version()}",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--database-url", default=None, help="default: a fresh embedded PostgreSQL")
    args = parser.parse_args()
    result = asyncio.run(run(args.events, args.rounds, args.database_url))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "metrics.json").write_text(json.dumps(result, indent=2) + "\n")
    width = max(len(k) for k in result)
    for key, value in result.items():
        print(f"{key:<{width}}  {value}")


if __name__ == "__main__":
    main()
