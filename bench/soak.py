"""Sustained load: deals at a steady rate for a long while, with throughput, memory and errors
reported minute by minute (`make soak`, 30 minutes; not part of CI).

    .venv/bin/python -m bench.soak [--minutes 30] [--rate 2.0]

Runs a fresh embedded stack with the worker in a process of its own (its RSS is what is
sampled). Every deal goes through the real path: started, stages completed with their facts,
won or lost, its follow-up cadences and reminders on compressed time. At the end every finished
deal's event log is compared with its workflow's events. Writes bench/results/soak.json and
exits non-zero on any error, any lost or duplicated event.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import subprocess
import sys
import time
import uuid
from typing import Any

from bench.stack import BenchStack, bench_stack, machine, rss_mb
from bench.system_bench import RESULTS
from client.api import DealflowClient, Refused
from client.demo import fact_value
from store import event_log

TIME_SCALE = 1 / 20_000  # a business day in about 4 s: reminders and touches happen during the run


async def run(minutes: float, rate: float) -> dict[str, Any]:
    async with bench_stack("soak") as stack:
        queue = "soak"
        worker = stack.worker_process(queue, stack.tmp / "worker.log")
        try:
            return await _drive(stack, worker, queue, minutes, rate)
        finally:
            worker.terminate()
            worker.wait(30)


async def _drive(
    stack: BenchStack, worker: subprocess.Popen[bytes], queue: str, minutes: float, rate: float
) -> dict[str, Any]:
    pool, pinned = stack.pool, stack.deployed
    client = DealflowClient(stack.temporal, pool, stack.settings(queue))
    rng = random.Random(11)
    finished: list[str] = []
    errors: list[str] = []
    refusals = 0
    done_this_minute = 0

    async def deal() -> None:
        nonlocal refusals, done_this_minute
        name = rng.choice(["seven-stage", "three-phase"])
        d = pinned[name].definition
        deal_id = f"soak-{uuid.uuid4().hex[:10]}"
        try:
            await client.start_deal(
                name,
                deal_id,
                rng.choice(["ann", "bo", "cy"]),
                value=1000.0,
                fields={"customer": deal_id},
                time_scale=TIME_SCALE,
            )
            for stage in d.pre_sale:
                await asyncio.sleep(rng.uniform(0.5, 4))
                facts = {f.fact: fact_value(f, rng) for f in stage.exit_criteria}
                if rng.random() < 0.1 and d.outcomes.lost and stage.id in d.lost_from():
                    await client.lose(deal_id, d.outcomes.lost.reasons[0], actor="rep")
                    break
                if stage.id == d.pre_sale[-1].id:
                    await client.win(deal_id, actor="rep", facts=facts)
                else:
                    await client.complete_stage(deal_id, stage.id, actor="rep", facts=facts)
            finished.append(deal_id)
            done_this_minute += 1
        except Refused as exc:
            refusals += 1  # e.g. touches required before a loss: a clear refusal, not an error
            if exc.code not in {"too_few_touches", "lose_not_allowed"}:
                errors.append(f"{deal_id}: refused {exc.code}: {exc.message}")
        except Exception as exc:  # every other failure is a finding
            errors.append(f"{deal_id}: {type(exc).__name__}: {exc}")

    series: list[dict[str, Any]] = []
    tasks: set[asyncio.Task[None]] = set()
    started = time.monotonic()
    next_sample = started + 60
    while time.monotonic() - started < minutes * 60:
        task = asyncio.create_task(deal())
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        await asyncio.sleep(rng.expovariate(rate))
        if time.monotonic() >= next_sample:
            events = await pool.fetchval("SELECT count(*) FROM deal_events")
            point = {
                "minute": len(series) + 1,
                "deals_finished": done_this_minute,
                "in_flight": len(tasks),
                "events_logged": events,
                "worker_rss_mb": round(rss_mb(worker.pid), 1),
                "errors": len(errors),
            }
            series.append(point)
            print(json.dumps(point), flush=True)
            done_this_minute = 0
            next_sample += 60
    await asyncio.gather(*tasks)
    # every finished deal: its log equals its workflow's events
    await asyncio.sleep(5)
    lost = duplicated = mismatched = 0
    for deal_id in finished:
        events = await client.events(deal_id)
        logged = await event_log.read(pool, deal_id)
        if logged != events:
            mismatched += 1
            lost += max(0, len(events) - len(logged))
    rss = [p["worker_rss_mb"] for p in series]
    return {
        "machine": machine(),
        "minutes": minutes,
        "target_rate_per_s": rate,
        "deals_finished": len(finished),
        "refusals": refusals,
        "errors": errors[:50],
        "error_count": len(errors),
        "lost_events": lost,
        "duplicated_events": duplicated,
        "mismatched_logs": mismatched,
        "worker_rss_first_last_max_mb": [rss[0], rss[-1], max(rss)] if rss else [],
        "series": series,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30)
    parser.add_argument("--rate", type=float, default=2.0, help="new deals per second")
    args = parser.parse_args()
    result = asyncio.run(run(args.minutes, args.rate))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "soak.json").write_text(json.dumps(result, indent=2) + "\n")
    summary = {k: v for k, v in result.items() if k != "series"}
    print(json.dumps(summary, indent=2))
    bad = result["error_count"] or result["lost_events"] or result["duplicated_events"] or result["mismatched_logs"]
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
