"""Benchmark: the full metrics, as a ratio to one sequential scan of the event table, at one and at
ten million events, in one run.

    .venv/bin/python -m bench.metrics_bench [--size tiny|quick|default|org] [--events N ...] [--rounds N]

`make bench` measures at one million events (`--size default`), `make bench-org` at one and ten
million in one run (`--size org`, bench/results/metrics-org.json).

Loads generated deals (the engine's own decisions, see `bench.generate`) into a fresh embedded
PostgreSQL (or the empty database `--database-url` names) by COPY, with the projections and the
metric aggregates filled the way the migration that adds them back-fills them
(`store.aggregates.Backfill`). At each size it times, interleaved round by round so both see the
same machine load, (a) a plain sequential scan of the event table and (b) the full metrics
computation for the process: stages, phases and the deal set; then, once each, the metrics with
an owner, with a start window and with an as-of instant that cut through days. Then it loads
more deals and measures again. It prints the median times, their ratios and how the metrics'
time grew with the log, and writes them, with the machine and the load it ran under, to
`bench/results/metrics.json`. Absolute times on a noisy machine mean little; the ratios measured
side by side are the figures to compare.
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import asyncpg

from bench import lifecycle
from bench.generate import OWNERS, T0, simulate
from bench.stack import bench_main, close_pool
from definitions.loader import content_hash, load_file, shipped
from definitions.model import ProcessDefinition
from store import projections
from store.aggregates import Backfill
from store.db import connect_pool
from store.event_log import LOG_COLUMNS
from store.history_load import History, rows_of
from store.metrics import Filters, compute
from store.migrations import migrate
from store.projections import deal_rows, stage_visits
from store.visits import Conn

SEQ_SCAN = "SELECT count(*), max(occurred_at), sum(length(stage)) FROM deal_events"
PROCESS = "bench-seven"
# the sizes the log is measured at, and the rounds at each
SIZES = {
    "tiny": ([20_000], 2),
    "quick": ([100_000], 3),
    "default": ([1_000_000], 5),
    "org": ([1_000_000, 10_000_000], 5),
}


class Loader:
    """Generated deals into the log, its projections and the aggregates by COPY, on one
    connection, in steps (the rows of `store.history_load`; the aggregates by the back-fill's
    function over the deals' events, in memory)."""

    def __init__(self, conn: Conn, d: ProcessDefinition, fill: Backfill, seed: int):
        self.conn, self.d, self.fill = conn, d, fill
        self.rng = random.Random(seed)
        self.events = self.deals = 0

    async def load_until(self, target: int) -> None:
        started = time.monotonic()
        while self.events < target:
            histories = []
            for _ in range(2000):
                deal_id = f"bench-{self.deals:08d}"
                events = simulate(self.d, "v1", deal_id, self.rng)
                histories.append(History(deal_id, PROCESS, "v1", events))
                self.fill.add(deal_id, PROCESS, "v1", events)
                self.deals += 1
                self.events += len(events)
            written = rows_of(histories)
            await self.conn.copy_records_to_table("deal_events", records=written.log, columns=LOG_COLUMNS)
            await projections.apply(self.conn, written.batches, models=(deal_rows.PROJECTION, stage_visits.PROJECTION))
            await self.fill.flush(self.conn)
            elapsed = time.monotonic() - started
            print(f"\rloaded {self.events:,} events of {self.deals:,} deals ({elapsed:.0f} s)", end="", flush=True)
        print(f"\nsumming the aggregates ({time.monotonic() - started:.0f} s)", flush=True)
        await self.fill.finish(self.conn)
        # as autovacuum would
        await self.conn.execute(
            "VACUUM ANALYZE deal_events, deals, stage_visits, deal_metric_state, metric_totals, metric_buckets"
        )
        print(f"loaded and vacuumed ({time.monotonic() - started:.0f} s)", flush=True)


async def deploy(pool: asyncpg.Pool) -> ProcessDefinition:
    """The bench's process, deployed as every process with deals is (the aggregates keep the
    figures of the layouts of deployed versions)."""
    pinned = load_file(next(p for p in shipped() if p.stem == "seven-stage"))
    d = pinned.definition.model_copy(update={"name": PROCESS})
    await pool.execute(
        "INSERT INTO definitions (name, version, content_hash, body, deployed_by)"
        " VALUES ($1, 'v1', $2, $3::jsonb, 'bench') ON CONFLICT DO NOTHING",
        PROCESS,
        content_hash(d),
        d.model_dump_json(),
    )
    return d


async def load(pool: asyncpg.Pool, target: int, seed: int) -> tuple[str, int, int]:
    """Generated deals of the bench's process until the log holds `target` events: the process's
    name, the events and the deals (bench.web_bench's dashboard loads its deals this way too)."""
    d = await deploy(pool)
    async with pool.acquire() as conn:
        loader = Loader(conn, d, await Backfill.start(conn), seed)
        await loader.load_until(target)
    return PROCESS, loader.events, loader.deals


async def timed(fn: Any) -> float:
    started = time.perf_counter()
    await fn()
    return time.perf_counter() - started


async def measure(pool: asyncpg.Pool, d: ProcessDefinition, rounds: int) -> dict[str, Any]:
    async def scan() -> None:
        async with pool.acquire() as conn, conn.transaction():
            await conn.execute(
                "SET LOCAL enable_indexscan = off; SET LOCAL enable_indexonlyscan = off;"
                " SET LOCAL enable_bitmapscan = off"
            )
            await conn.fetchrow(SEQ_SCAN)

    async def metrics() -> None:
        await compute(pool, d, Filters(process=PROCESS))

    await scan()  # warm the cache for both
    await metrics()
    scans, metric_times = [], []
    for n in range(rounds):
        scans.append(await timed(scan))
        metric_times.append(await timed(metrics))
        print(f"round {n + 1}: seq scan {scans[-1]:.3f} s, metrics {metric_times[-1]:.3f} s", flush=True)
    scan_s, metrics_s = statistics.median(scans), statistics.median(metric_times)
    # filters that cut through days (the aggregates' buckets): computed in part from the projections
    cut = T0 + timedelta(days=20, hours=13, minutes=17)
    filtered = {
        "owner": Filters(process=PROCESS, owner=OWNERS[1]),
        "window": Filters(process=PROCESS, since=T0 + timedelta(days=9, hours=5), until=cut),
        "as_of": Filters(process=PROCESS, as_of=cut),
    }
    filtered_s = {}
    for name, f in filtered.items():
        filtered_s[name] = await timed(lambda f=f: compute(pool, d, f))
        print(f"metrics by {name}: {filtered_s[name]:.3f} s", flush=True)
    return {
        "events": await pool.fetchval("SELECT count(*) FROM deal_events"),
        "deals": await pool.fetchval("SELECT count(*) FROM deals"),
        "table_size": await pool.fetchval("SELECT pg_size_pretty(pg_total_relation_size('deal_events'))"),
        "aggregates_size": await pool.fetchval(
            "SELECT pg_size_pretty(pg_total_relation_size('metric_totals') + pg_total_relation_size('metric_buckets')"
            " + pg_total_relation_size('deal_metric_state'))"
        ),
        "total_rows": await pool.fetchval("SELECT count(*) FROM metric_totals"),
        "bucket_rows": await pool.fetchval("SELECT count(*) FROM metric_buckets"),
        "seq_scan_seconds": round(scan_s, 4),
        "metrics_seconds": round(metrics_s, 4),
        "ratio_metrics_to_seq_scan": round(metrics_s / scan_s, 3),
        "filtered_seconds": {k: round(v, 3) for k, v in filtered_s.items()},
        "filtered_ratio_to_seq_scan": {k: round(v / scan_s, 2) for k, v in filtered_s.items()},
    }


async def run(size: tuple[list[int], int], args: argparse.Namespace) -> dict[str, Any]:
    sizes, rounds = sorted(args.events or size[0]), args.rounds or size[1]
    if args.database_url:
        return await _measure(sizes, rounds, args.database_url)
    with lifecycle.postgres(Path(tempfile.mkdtemp(prefix="dealflow-bench-")) / "pg") as server:
        return await _measure(sizes, rounds, server.url)


async def _measure(sizes: list[int], rounds: int, url: str) -> dict[str, Any]:
    pool = await connect_pool(url, max_size=4)
    results = []
    try:
        await migrate(pool)
        if await pool.fetchval("SELECT count(*) FROM deal_events WHERE process = $1", PROCESS):
            raise SystemExit("the database already holds bench data: point --database-url at an empty database")
        d = await deploy(pool)
        async with pool.acquire() as conn:
            loader = Loader(conn, d, await Backfill.start(conn), seed=1)
            for n in sizes:
                await loader.load_until(n)
                results.append(await measure(pool, d, rounds))
    finally:
        await close_pool(pool)
    first, last = results[0], results[-1]
    return {
        "description": "full metrics against one sequential scan of the event table",
        "rounds": rounds,
        "sizes": results,
        "events_growth": round(last["events"] / first["events"], 2),
        "metrics_time_growth": round(last["metrics_seconds"] / first["metrics_seconds"], 2),
        "seq_scan_time_growth": round(last["seq_scan_seconds"] / first["seq_scan_seconds"], 2),
    }


def options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--events", type=int, nargs="+", help="the sizes instead of --size's")
    parser.add_argument("--rounds", type=int, help="the rounds instead of --size's")
    parser.add_argument("--database-url", default=None, help="default: a fresh embedded PostgreSQL")


def show(result: dict[str, Any]) -> None:
    for size in result["sizes"]:
        print(
            f"{size['events']:>12,} events: metrics {size['metrics_seconds']:.3f} s,"
            f" seq scan {size['seq_scan_seconds']:.3f} s, ratio {size['ratio_metrics_to_seq_scan']};"
            f" filtered (ratio): {size['filtered_ratio_to_seq_scan']}"
        )
    print(
        f"events x{result['events_growth']}: metrics time x{result['metrics_time_growth']},"
        f" seq scan time x{result['seq_scan_time_growth']}"
    )


if __name__ == "__main__":
    bench_main(__doc__ or "", "metrics", SIZES, run, options=options, show=show)
