"""Imports against their raw baselines, side by side in one run.

- Closed history: 100,000 closed deals (about 1,000,000 events) read from a generic CSV export,
  planned, retold as events, hash-chained and written with their projections
  (`import_service`), against a raw `COPY` of the same log rows into a table of the log's shape.
- Open deals: deals started at the stage they reached, through the import, against starts of the
  bare workflow (bench.bare) with the same concurrency.

Results go to bench/results/import.json; `make bench` runs it with 20,000 closed deals, `make
bench-org` with 100,000 (bench/results/import-org.json).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from temporalio.common import WorkflowIDConflictPolicy

from app import import_service
from bench.bare import BareWorkflow
from bench.stack import bench_main, bench_stack
from client.api import DealflowClient
from store.event_log import LOG_COLUMNS

BARE_QUEUE = "import-bare"
# closed deals, open deals
SIZES = {"tiny": (200, 20), "quick": (5_000, 100), "default": (20_000, 1_000), "org": (100_000, 1_000)}
STAGES = ["prospecting", "preparation", "needs-assessment", "presentation", "objection-handling", "closing"]


def export(path: Path, deals: int, *, closed: bool, seed: int) -> int:
    """A generic CSV of stage changes; returns its rows."""
    rng = random.Random(seed)
    start = datetime(2024, 1, 1, tzinfo=UTC)
    lines = ["deal_id,stage,entered_at,owner,value,lost_reason"]
    for n in range(deals):
        at = start + timedelta(minutes=rng.randrange(700_000))
        reach = rng.randrange(1, len(STAGES) + 1)
        owner, value = f"rep-{rng.randrange(30)}", rng.randrange(1, 500) * 100
        for stage in STAGES[:reach]:
            lines.append(f"d{n},{stage},{at.isoformat()},{owner},{value},")
            at += timedelta(hours=rng.randrange(1, 200))
        if closed:
            won = reach == len(STAGES) and rng.random() < 0.6
            reason = "" if won else rng.choice(["no-budget", "timing", "no-need"])
            lines.append(f"d{n},{'won' if won else 'lost'},{at.isoformat()},{owner},{value},{reason}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return len(lines) - 1


async def closed_history(c: DealflowClient, tmp: Path, deals: int) -> dict[str, Any]:
    csv = tmp / "closed.csv"
    rows = export(csv, deals, closed=True, seed=1)
    started = time.perf_counter()
    the_plan, files = await import_service.read(c, "csv", [str(csv)], process="seven-stage", mapping_file=None)
    report = await import_service.run(c, the_plan, files, actor="bench", dry_run=False)
    import_s = time.perf_counter() - started
    assert report.recorded == deals and not report.problems, report.problems[:3]
    events = await c.pool.fetchval("SELECT count(*) FROM deal_events WHERE actor = 'import' OR deal_id LIKE 'csv-%'")
    # the same rows, as the log holds them, copied raw into a table of the log's shape
    records = [
        tuple(r)
        for r in await c.pool.fetch(
            f"SELECT {', '.join(LOG_COLUMNS)} FROM deal_events WHERE deal_id LIKE 'csv-%' ORDER BY deal_id, seq"
        )
    ]
    async with c.pool.acquire() as conn:
        await conn.execute("CREATE TABLE raw_copy (LIKE deal_events INCLUDING DEFAULTS INCLUDING INDEXES)")
        started = time.perf_counter()
        await conn.copy_records_to_table("raw_copy", records=records, columns=LOG_COLUMNS)
        copy_s = time.perf_counter() - started
        await conn.execute("DROP TABLE raw_copy")
    return {
        "deals": deals,
        "csv_rows": rows,
        "events": events,
        "import_seconds": round(import_s, 2),
        "raw_copy_seconds": round(copy_s, 2),
        "import_events_per_second": round(events / import_s),
        "copy_events_per_second": round(events / copy_s),
        "ratio_import_to_copy_rate": round(copy_s / import_s, 3),
    }


async def open_deals(c: DealflowClient, tmp: Path, deals: int) -> dict[str, Any]:
    """In two rounds each, alternating, so that neither side runs while the other's just-started
    workflows still keep the server busy."""
    gate = asyncio.Semaphore(import_service.OPEN_AT_ONCE)

    async def bare(n: int) -> None:
        async with gate:
            await c.temporal.start_workflow(
                BareWorkflow.run,
                1,
                id=f"bare-{uuid.uuid4().hex[:10]}",
                task_queue=BARE_QUEUE,
                id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            )

    ours = theirs = 0.0
    half = deals // 2
    for round_no in range(2):
        started = time.perf_counter()
        await asyncio.gather(*(bare(n) for n in range(half)))
        theirs += time.perf_counter() - started
        csv = tmp / f"open-{round_no}.csv"
        export(csv, half, closed=False, seed=2 + round_no)
        the_plan, files = await import_service.read(c, "csv", [str(csv)], process="seven-stage", mapping_file=None)
        the_plan = the_plan.model_copy(update={"source": f"open{uuid.uuid4().hex[:6]}"})
        started = time.perf_counter()
        report = await import_service.run(c, the_plan, files, actor="bench", dry_run=False)
        ours += time.perf_counter() - started
        assert report.started == half, report.problems[:3]
    return {
        "deals": 2 * half,
        "import_starts_per_second": round(2 * half / ours, 1),
        "bare_starts_per_second": round(2 * half / theirs, 1),
        "ratio_import_to_bare_rate": round(theirs / ours, 3),
        "concurrency": import_service.OPEN_AT_ONCE,
    }


async def run(size: tuple[int, int], args: argparse.Namespace) -> dict[str, Any]:
    closed, opened = size
    result: dict[str, Any] = {}
    async with bench_stack("importbench") as stack:
        client = DealflowClient(stack.temporal, stack.pool, stack.settings("import"))
        stack.worker_process("import", log=stack.tmp / "worker.log")
        stack.bare_worker_process(BARE_QUEUE)
        await asyncio.sleep(3)
        print("closed history against a raw COPY of the same rows", flush=True)
        result["closed"] = await closed_history(client, stack.tmp, closed)
        print("open deals against bare workflow starts", flush=True)
        result["open"] = await open_deals(client, stack.tmp, opened)
    return result


if __name__ == "__main__":
    bench_main(__doc__ or "", "import", SIZES, run)
