"""Sustained load: deals at a steady rate for a long while, with readers polling beside them, and
throughput, memory and errors reported minute by minute (`make soak`, 30 minutes; not part of CI).

    .venv/bin/python -m bench.soak [--minutes 30] [--rate 2.0]

Runs a fresh embedded stack with the worker in a process of its own (its RSS is what is
sampled). Every deal goes through the real path: started, stages completed with their facts,
won or lost, its follow-up cadences and reminders on compressed time. Meanwhile readers poll
statuses, lists and metrics (from PostgreSQL, as the web app does), an auditor verifies running
deals' logs against their histories, and a watcher checks that no logged row ever changes. At the
end every finished deal's log is compared with the events in its Temporal history, every history
is replayed, each deal's final state is compared with the fold of its log, and every touch must
be in the outbox exactly once. Writes bench/results/soak.json and exits non-zero on any error,
any lost, duplicated or rewritten event, any failed replay or divergent state.
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

from temporalio.client import WorkflowExecutionStatus

from app.audit_service import verify_running
from audit.history import deal_events, fetch_deal
from audit.replay import replay
from bench.stack import BenchStack, bench_main, bench_stack, rss_mb
from cli.demo import fact_value
from client.api import DealflowClient, Refused
from domain.commands import workflow_id
from domain.events import TouchSent
from domain.state import DealState, fold
from store import event_log
from store.metrics import Filters, compute

TIME_SCALE = 1 / 20_000  # a business day in about 4 s: reminders and touches happen during the run


SIZES = {"tiny": 0.2, "quick": 5.0, "default": 30.0}  # minutes


async def run(minutes: float, args: argparse.Namespace) -> dict[str, Any]:
    async with bench_stack("soak") as stack:
        queue = "soak"
        worker = stack.worker_process(queue, stack.tmp / "worker.log")
        return await _drive(stack, worker, queue, args.minutes or minutes, args.rate)


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
            in_flight.append(deal_id)  # readers look at it from now on
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
        finally:
            if deal_id in in_flight:
                in_flight.remove(deal_id)

    in_flight: list[str] = []
    reads = {"status": 0, "list": 0, "metrics": 0, "verify": 0}
    seen_rows: dict[tuple[str, int], str] = {}
    rewritten: list[str] = []
    stop = asyncio.Event()

    async def read() -> None:
        """A dashboard and reps: statuses, a stage's list and a process's metrics, every 0.2 s."""
        while not stop.is_set():
            await asyncio.sleep(0.2)
            if not in_flight:
                continue
            deal_id = rng.choice(in_flight)
            name = rng.choice(["seven-stage", "three-phase"])
            try:
                await client.status(deal_id)
                await client.list_deals(process=name, stage=pinned[name].definition.stages[1].id)
                await compute(pool, pinned[name].definition, Filters(process=name))
                reads["status"] += 1
                reads["list"] += 1
                reads["metrics"] += 1
            except Exception as exc:
                errors.append(f"reader on {deal_id}: {type(exc).__name__}: {exc}")

    async def audit() -> None:
        """An auditor: a running deal's log verified against its history, every 2 s; and a
        sample of logged rows, checked never to change."""
        while not stop.is_set():
            await asyncio.sleep(2)
            if not in_flight:
                continue
            deal_id = rng.choice(in_flight)
            verdict = await verify_running(client, deal_id)
            reads["verify"] += 1
            errors.extend(f"verify {deal_id}: {p}" for p in verdict.problems)
            sample = rng.sample(in_flight, min(20, len(in_flight)))
            rows = await pool.fetch(
                "SELECT deal_id, seq, hash FROM deal_events WHERE deal_id = ANY($1::text[])", sample
            )
            now = {(r["deal_id"], r["seq"]): r["hash"] for r in rows}
            rewritten.extend(f"{d} seq {n}" for (d, n), h in seen_rows.items() if d in sample and now.get((d, n)) != h)
            seen_rows.update(now)

    background = [asyncio.create_task(read()), asyncio.create_task(audit())]
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
    stop.set()
    await asyncio.gather(*background)
    check = await _check_finished(client, finished)
    rss = [p["worker_rss_mb"] for p in series]
    return {
        "minutes": minutes,
        "target_rate_per_s": rate,
        "deals_finished": len(finished),
        "refusals": refusals,
        "errors": errors[:50],
        "error_count": len(errors),
        "reads": reads,
        "rows_watched": len(seen_rows),
        "rewritten_rows": len(rewritten),
        **check,
        "worker_rss_first_last_max_mb": [rss[0], rss[-1], max(rss)] if rss else [],
        "series": series,
    }


async def _check_finished(client: DealflowClient, finished: list[str]) -> dict[str, int]:
    """Every deal the load finished with: its log against the events in its Temporal history, its
    histories replayed, and each touch it recorded once in the outbox; for a deal whose workflow
    has ended, its end state against the fold of its log. A won deal in a post-sale stage runs on
    (its log is verified as a running deal's); one that should have ended and has not is stuck."""
    pool = client.pool
    out = {"lost_events": 0, "duplicated_events": 0, "mismatched_logs": 0, "stuck_deals": 0}
    out |= {"histories_replayed": 0, "nondeterministic": 0, "divergent_states": 0, "touch_mismatches": 0}
    out |= {"deals_still_running": 0}
    for deal_id in finished:
        handle = client.temporal.get_workflow_handle(workflow_id(deal_id), result_type=DealState)
        logged = await event_log.read(pool, deal_id)
        ended: DealState | None = None
        if (await handle.describe()).status == WorkflowExecutionStatus.RUNNING:
            state = fold(logged)
            if state.may_end:  # ending: give it a minute
                try:
                    ended = await asyncio.wait_for(handle.result(), 60)
                except TimeoutError:
                    out["stuck_deals"] += 1
                    continue
            else:
                out["deals_still_running"] += 1
                out["mismatched_logs"] += bool((await verify_running(client, deal_id)).problems)
        else:
            ended = await handle.result()
        histories = await fetch_deal(client.temporal, deal_id)
        if ended is not None:
            logged = await event_log.read(pool, deal_id)
            recorded = deal_events(histories)
            out["lost_events"] += len({e.seq for e in recorded} - {e.seq for e in logged})
            out["mismatched_logs"] += logged != recorded
            out["divergent_states"] += ended != fold(logged)
            touches = {(e.cadence_run, e.touch_no) for e in logged if isinstance(e, TouchSent)}
            sent = await pool.fetchval(
                "SELECT count(*) FROM outbox WHERE deal_id = $1 AND kind = 'touch' AND status = 'sent'", deal_id
            )
            out["touch_mismatches"] += sent != len(touches)
        counts = await pool.fetch("SELECT count(*) AS n FROM deal_events WHERE deal_id = $1 GROUP BY seq", deal_id)
        out["duplicated_events"] += sum(r["n"] - 1 for r in counts)
        replayed = await replay(histories)
        out["histories_replayed"] += len(replayed)
        out["nondeterministic"] += sum(not r.ok for r in replayed)
    return out


def options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--minutes", type=float, help="instead of --size's (30 by default)")
    parser.add_argument("--rate", type=float, default=2.0, help="new deals per second")


def show(result: dict[str, Any]) -> None:
    print(json.dumps({k: v for k, v in result.items() if k != "series"}, indent=2))


def main() -> None:
    result = bench_main(__doc__ or "", "soak", SIZES, run, options=options, show=show)
    findings = ["error_count", "lost_events", "duplicated_events", "mismatched_logs", "stuck_deals"]
    findings += ["nondeterministic", "divergent_states", "touch_mismatches", "rewritten_rows"]
    sys.exit(1 if any(result[k] for k in findings) else 0)


if __name__ == "__main__":
    main()
