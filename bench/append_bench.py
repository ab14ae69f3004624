"""Benchmark: the cost of one idempotent append, against a raw COPY of the same rows.

    .venv/bin/python -m bench.append_bench [--deals 1000] [--rounds 3]

Writes bench/results/append.json, with the machine and the load it ran under.

The same measurement as `bench.system_bench`'s append part (generated deals sent in batches of
four, one transaction each: hash chain, projections, aggregates), without the Temporal stack, so
it can be run before and after a change to the append path. The process's definition is
deployed first, as it is in production: the metric aggregates are kept only for deals whose
stage layout is known. Each round appends fresh deals; the ratio to COPY is the figure to
compare, the rounds show the machine's noise.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import asyncpg

from bench import lifecycle
from bench.generate import simulate
from bench.stack import bench_main, close_pool
from definitions.loader import load_file, shipped
from definitions.model import ProcessDefinition
from domain.activity_io import AppendEvents, DealSnapshot
from domain.state import fold
from store import event_log
from store.db import connect_pool
from store.event_log import GENESIS, LOG_COLUMNS, canonical, chained
from store.migrations import migrate


async def append_vs_copy(pool: asyncpg.Pool, d: ProcessDefinition, deals: int, prefix: str) -> dict[str, Any]:
    rng = random.Random(prefix)
    batches = []
    for n in range(deals):
        deal_id = f"{prefix}-{n:06d}"
        events = simulate(d, "v1", deal_id, rng)
        for i in range(0, len(events), 4):  # batches of four, as a busy deal's loop sends them
            snapshot = DealSnapshot.of(fold(events[: i + 4]))
            batches.append(AppendEvents(deal_id=deal_id, events=events[i : i + 4], snapshot=snapshot))
    total = sum(len(b.events) for b in batches)
    started = time.perf_counter()
    for batch in batches:
        await event_log.append(pool, batch)
    ours = total / (time.perf_counter() - started)
    rows = []
    prev: dict[str, str] = {}
    for batch in batches:
        payloads = [canonical(e) for e in batch.events]
        links = chained(prev.get(batch.deal_id, GENESIS), payloads)
        for e, payload, (p, h) in zip(batch.events, payloads, links, strict=True):
            rows.append(
                (batch.deal_id, e.seq, e.type, e.at, e.actor, e.stage, e.request_id, d.name, "v1", payload, p, h)
            )
            prev[batch.deal_id] = h
    await pool.execute("DROP TABLE IF EXISTS copy_target; CREATE TABLE copy_target (LIKE deal_events INCLUDING ALL)")
    started = time.perf_counter()
    await pool.copy_records_to_table("copy_target", records=rows, columns=LOG_COLUMNS)
    raw = total / (time.perf_counter() - started)
    return {"events": total, "append_events_per_s": round(ours), "copy_events_per_s": round(raw), "ratio": ours / raw}


SIZES = {"tiny": (20, 1), "default": (1000, 3)}  # deals per round, rounds


async def run(size: tuple[int, int], args: argparse.Namespace) -> dict[str, Any]:
    deals, rounds = args.deals or size[0], args.rounds or size[1]
    with lifecycle.postgres(Path(tempfile.mkdtemp(prefix="dealflow-append-")) / "pg") as server:
        pool = await connect_pool(server.url, max_size=2)
        try:
            await migrate(pool)
            seven = next(p for p in shipped() if p.stem == "seven-stage")
            d = load_file(seven).definition.model_copy(update={"name": "bench-append"})
            await pool.execute(
                "INSERT INTO definitions (name, version, content_hash, body, deployed_by)"
                " VALUES ($1, 'v1', 'bench', $2::jsonb, 'bench')",
                d.name,
                json.dumps(d.model_dump(mode="json")),
            )
            results = []
            for n in range(rounds):
                r = await append_vs_copy(pool, d, deals, prefix=f"r{n}")
                print(f"round {n + 1}: {r}", flush=True)
                results.append(r)
        finally:
            await close_pool(pool)
    return {
        "events_per_round": results[0]["events"],
        "append_events_per_s": round(statistics.median(r["append_events_per_s"] for r in results)),
        "copy_events_per_s": round(statistics.median(r["copy_events_per_s"] for r in results)),
        "ratio": round(statistics.median(r["ratio"] for r in results), 4),
        "ratios": [r["ratio"] for r in results],
    }


def options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--deals", type=int, help="deals per round instead of --size's")
    parser.add_argument("--rounds", type=int, help="rounds instead of --size's")


if __name__ == "__main__":
    bench_main(__doc__ or "", "append", SIZES, run, options=options)
