"""Benchmarks of the whole system against bare baselines, measured side by side in one run.

    .venv/bin/python -m bench.system_bench [--size tiny|quick|default|org]

On a fresh embedded stack (PostgreSQL and the Temporal dev server from their wheels):

- deal throughput: deals driven end to end (start, every stage of seven-stage completed with its
  facts, won, every event in PostgreSQL) per second, against a bare workflow taking the same
  starts and updates with no logic; in rounds of one batch each, taking turns to go first, the
  ratio the median of the rounds' ratios.
- rep latency: one stage completion round trip through the client, against one bare update
  round trip, alternating; p50 and p99.
- event append: events per second through the event log's idempotent, batched append (hash
  chain, projections) against a raw COPY of the same rows into a table of the same shape.
- replay: histories per second through `dealflow audit replay`'s code against the raw Replayer.
- scale: the RSS of a worker process holding open deals waiting in various stages, and the time
  to list the deals in one stage out of 100,000 from the projection (against a full scan).
- counts per deal: what Temporal recorded for the throughput run's deals against the bare
  workflows (history events, workflow tasks and what woke them, activity tasks), read from the
  histories (bench.history_counts).

`make bench` runs the default sizes; `make bench-org` the org sizes (10,000 open deals for the
RSS, the longest part). Prints a table and writes bench/results/system.json (with the machine
and the load it ran under). Absolute numbers mean little on a noisy machine; the ratios are the
figures to compare.

Both sides send their requests the way the client does (`app/retry.py`): a call whose answer is
lost (an RPC timeout on a busy machine, a dropped connection) is sent again under the same id, so
it no longer ends the run; the figures say how many were sent again.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import asyncpg
from temporalio.client import Client, WorkflowHandle
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from app.retry import Deadline, RetryCounts, until_answered
from audit.replay import replay as audit_replay
from bench.bare import BareWorkflow
from bench.generate import simulate
from bench.history_counts import per_deal
from bench.levers import PollingWatch, levers
from bench.stack import BenchStack, bench_main, bench_stack, rss_mb
from cli.demo import fact_value
from client.api import DealflowClient
from definitions.loader import load_file, shipped
from domain.activity_io import AppendEvents, DealSnapshot
from domain.commands import workflow_id
from domain.state import fold
from store import event_log
from store.deals import DEAL_COLUMNS, list_deals
from store.event_log import GENESIS, LOG_COLUMNS, canonical, chained
from worker.run import WORKFLOWS
from worker.settings import EAGER_ACTIVITIES_ENV_VAR

T = TypeVar("T")

BARE_QUEUE = "bench-bare"
SEVEN = next(p for p in shipped() if p.stem == "seven-stage")


@dataclass(frozen=True)
class Sizes:
    deals: int  # per side and round of the throughput run
    rounds: int
    concurrency: int
    latency_samples: int
    logged_samples: int  # starts and losses
    append_deals: int
    replay_histories: int
    replay_rounds: int
    open_deals: int  # held by a worker for its RSS
    listed_rows: int  # projection rows the listing picks one stage from


SIZES = {
    # seconds, for the test that stops a bench by a signal
    "tiny": Sizes(4, 2, 4, 5, 3, 10, 4, 1, 12, 1_000),
    "quick": Sizes(30, 2, 20, 50, 30, 300, 30, 2, 1_000, 100_000),
    # make bench: five rounds for the ratio's median and range; the RSS past the workflow cache
    # (1,000 runs), where a worker's memory stops growing with the deals it holds
    "default": Sizes(100, 5, 20, 200, 100, 1_000, 60, 3, 1_500, 100_000),
    # make bench-org: the sizes before the split (opening 10,000 deals took 15 minutes)
    "org": Sizes(150, 5, 20, 300, 150, 2_000, 100, 3, 10_000, 100_000),
}


def pct(values: list[float], q: float) -> float:
    xs = sorted(values)
    return xs[min(len(xs) - 1, int(q * len(xs)))]


async def _gather_limited(n: int, limit: int, make: Callable[[int], Awaitable[None]]) -> None:
    sem = asyncio.Semaphore(limit)

    async def one(i: int) -> None:
        async with sem:
            await make(i)

    await asyncio.gather(*(one(i) for i in range(n)))


class Bench:
    def __init__(self, client: DealflowClient, temporal: Client, pool: asyncpg.Pool, queue: str):
        self.client, self.temporal, self.pool, self.queue = client, temporal, pool, queue
        self.pinned = load_file(SEVEN)
        self.rng = random.Random(1)
        self.steps = len(self.pinned.definition.pre_sale)  # completions, the last one wins
        self.bare_retries = RetryCounts()
        # the ids each side started, for the counts per deal (throughput clears them after its warm-up)
        self.deal_ids: list[str] = []
        self.bare_ids: list[str] = []

    async def _bare(self, send: Callable[[int], Awaitable[T]], what: str) -> T:
        """A bare call, sent again under its id when its answer is lost, as the client does."""
        deadline = Deadline(self.client.settings.request_deadline_seconds)
        return await until_answered(send, deadline, self.bare_retries, what=what)

    async def bare_start(self, steps: int, prefix: str) -> WorkflowHandle[Any, Any]:
        bare_id = f"{prefix}-{uuid.uuid4().hex[:10]}"
        # the id is new: a workflow found under it was started by an earlier attempt of this call
        return await self._bare(
            lambda _: self.temporal.start_workflow(
                BareWorkflow.run,
                steps,
                id=bare_id,
                task_queue=BARE_QUEUE,
                id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            ),
            bare_id,
        )

    async def bare_step(self, handle: WorkflowHandle[Any, Any], n: int, last: bool) -> None:
        update_id = f"{handle.id}-{n}"
        await self._bare(lambda _: handle.execute_update(BareWorkflow.step, last, id=update_id), update_id)

    async def deal(self, i: int) -> None:
        deal_id = f"b-{uuid.uuid4().hex[:10]}"
        self.deal_ids.append(deal_id)
        # started as a rep would: the proposal template has what it needs
        fields = {"customer": f"Customer {i}", "title": "Bench opportunity", "contact": f"buyer{i}@example.com"}
        await self.client.start_deal("seven-stage", deal_id, "rep", value=25_000.0, fields=fields)
        for stage in self.pinned.definition.pre_sale[:-1]:
            facts = {f.fact: fact_value(f, self.rng) for f in stage.exit_criteria}
            await self.client.complete_stage(deal_id, stage.id, actor="rep", facts=facts)
        last = self.pinned.definition.pre_sale[-1]
        facts = {f.fact: fact_value(f, self.rng) for f in last.exit_criteria}
        won = await self.client.win(deal_id, actor="rep", facts=facts)
        while await event_log.count(self.pool, deal_id) < won.last_seq:  # "events in PostgreSQL"
            await asyncio.sleep(0.02)

    async def bare(self, i: int) -> None:
        handle = await self.bare_start(self.steps, "bare")
        self.bare_ids.append(handle.id)
        for n in range(self.steps):
            await self.bare_step(handle, n, n == self.steps - 1)
        await handle.result()


async def throughput(
    b: Bench, deals: int, rounds: int, concurrency: int, cpu: Callable[[], dict[str, float]]
) -> dict[str, Any]:
    """Deals per second against the bare workflow, and the CPU each part of the stack spent per
    deal (`cpu` reads the counters: client, each worker, Temporal server, PostgreSQL).

    Measured in pairs: each round runs both sides back to back, the side that goes first taking
    turns, so a drift of the machine over the run falls on both alike; the ratio is the median
    of the rounds' ratios. A warm-up batch on each side goes first and is not counted.
    """
    for fn in (b.deal, b.bare):
        await _gather_limited(concurrency, concurrency, fn)
    b.deal_ids.clear()
    b.bare_ids.clear()
    ours: list[float] = []
    bare: list[float] = []
    spent: dict[str, dict[str, float]] = {"dealflow": {}, "bare": {}}
    sides = [("dealflow", b.deal, ours), ("bare", b.bare, bare)]
    for n in range(rounds):
        for label, fn, out in sides if n % 2 == 0 else sides[::-1]:
            before = cpu()
            started = time.perf_counter()
            await _gather_limited(deals, concurrency, fn)
            out.append(deals / (time.perf_counter() - started))
            after = cpu()
            for part in after:
                if part.endswith("_worker") and not part.startswith(label):
                    continue  # the other side's worker, idle meanwhile
                name = "worker" if part.endswith("_worker") else part
                spent[label][name] = spent[label].get(name, 0.0) + after[part] - before[part]
        print(f"  round {n + 1}: dealflow {ours[-1]:.1f}, bare {bare[-1]:.1f} deals/s", flush=True)
    ratios = [o / r for o, r in zip(ours, bare, strict=True)]
    per_deal = {
        label: {part: round(seconds * 1000 / (deals * rounds), 1) for part, seconds in parts.items()}
        for label, parts in spent.items()
    }
    for parts in per_deal.values():
        parts["total"] = round(sum(parts.values()), 1)
    return {
        "dealflow_deals_per_s": round(statistics.median(ours), 2),
        "bare_deals_per_s": round(statistics.median(bare), 2),
        "ratio": round(statistics.median(ratios), 3),
        "round_ratios": [round(r, 3) for r in ratios],
        "cpu_ms_per_deal": per_deal,
    }


async def latency(b: Bench, samples: int) -> dict[str, Any]:
    deal_id = f"lat-{uuid.uuid4().hex[:8]}"
    await b.client.start_deal("seven-stage", deal_id, "rep")
    handle = await b.bare_start(samples + 1, "bare-lat")
    first = b.pinned.definition.pre_sale[0]
    facts = {f.fact: fact_value(f, b.rng) for f in first.exit_criteria}
    ours, bare = [], []
    for n in range(samples):
        t = time.perf_counter()  # one stage completion: validated, recorded, logged by the loop
        await b.client.complete_stage(deal_id, first.id, actor="rep", facts=facts)
        ours.append(time.perf_counter() - t)
        await b.client.move(deal_id, first.id, actor="rep", reason="again")  # back, not timed
        t = time.perf_counter()
        await b.bare_step(handle, n, False)
        bare.append(time.perf_counter() - t)
    return {
        "dealflow_p50_ms": round(pct(ours, 0.5) * 1000, 2),
        "dealflow_p99_ms": round(pct(ours, 0.99) * 1000, 2),
        "bare_p50_ms": round(pct(bare, 0.5) * 1000, 2),
        "bare_p99_ms": round(pct(bare, 0.99) * 1000, 2),
        "ratio_p50": round(pct(ours, 0.5) / pct(bare, 0.5), 3),
        "ratio_p99": round(pct(ours, 0.99) / pct(bare, 0.99), 3),
    }


async def logged_calls_latency(b: Bench, samples: int) -> dict[str, Any]:
    """The calls that return only once their events are in the log, against the bare calls: a
    start (the deal is readable when it returns) and a loss (the outcome is in the log, the
    projection and the metrics). The log being append-only, each waits for an append activity
    that Temporal recorded before it ran: this is what that promise costs."""
    reason = b.pinned.definition.outcomes.lost.reasons[0]  # type: ignore[union-attr]
    times: dict[str, list[float]] = {"start": [], "lose": [], "bare_start": [], "bare_update": []}
    for _ in range(samples):
        deal_id = f"out-{uuid.uuid4().hex[:10]}"
        t = time.perf_counter()
        await b.client.start_deal("seven-stage", deal_id, "rep")
        times["start"].append(time.perf_counter() - t)
        t = time.perf_counter()
        await b.client.lose(deal_id, reason, actor="rep")
        times["lose"].append(time.perf_counter() - t)
        t = time.perf_counter()
        handle = await b.bare_start(1, "bare-out")
        times["bare_start"].append(time.perf_counter() - t)
        t = time.perf_counter()
        await b.bare_step(handle, 0, True)
        times["bare_update"].append(time.perf_counter() - t)
    out: dict[str, Any] = {f"{k}_p50_ms": round(pct(v, 0.5) * 1000, 2) for k, v in times.items()}
    out |= {f"{k}_p99_ms": round(pct(v, 0.99) * 1000, 2) for k, v in times.items()}
    out["start_ratio_p50"] = round(pct(times["start"], 0.5) / pct(times["bare_start"], 0.5), 3)
    out["lose_ratio_p50"] = round(pct(times["lose"], 0.5) / pct(times["bare_update"], 0.5), 3)
    return out


async def append_vs_copy(pool: asyncpg.Pool, deals: int) -> dict[str, Any]:
    d = load_file(SEVEN).definition.model_copy(update={"name": "bench-append"})
    rng = random.Random(3)
    batches = []
    for n in range(deals):
        events = simulate(d, "v1", f"ba-{n:06d}", rng)
        for i in range(0, len(events), 4):  # batches of four, as a busy deal's loop sends them
            part = events[: i + 4]
            batches.append(
                AppendEvents(deal_id=f"ba-{n:06d}", events=events[i : i + 4], snapshot=DealSnapshot.of(fold(part)))
            )
    total = sum(len(b.events) for b in batches)
    started = time.perf_counter()
    for batch in batches:
        await event_log.append(pool, batch)
    ours = total / (time.perf_counter() - started)
    rows = []
    prev: dict[str, str] = {}
    for batch in batches:
        payloads = [canonical(e) for e in batch.events]
        for e, payload, (p, h) in zip(
            batch.events, payloads, chained(prev.get(batch.deal_id, GENESIS), payloads), strict=True
        ):
            rows.append(
                (batch.deal_id + "-c", e.seq, e.type, e.at, e.actor, e.stage, e.request_id, d.name, "v1", payload, p, h)
            )
            prev[batch.deal_id] = h
    await pool.execute("DROP TABLE IF EXISTS copy_target; CREATE TABLE copy_target (LIKE deal_events INCLUDING ALL)")
    started = time.perf_counter()
    await pool.copy_records_to_table(
        "copy_target",
        records=rows,
        columns=LOG_COLUMNS,
    )
    raw = total / (time.perf_counter() - started)
    return {
        "events": total,
        "append_events_per_s": round(ours),
        "copy_events_per_s": round(raw),
        "ratio": round(ours / raw, 3),
    }


async def replay_speed(temporal: Client, deal_ids: list[str], rounds: int) -> dict[str, Any]:
    histories = [await temporal.get_workflow_handle(workflow_id(d)).fetch_history() for d in deal_ids]
    raw = Replayer(workflows=list(WORKFLOWS), data_converter=pydantic_data_converter)
    ours, base = [], []
    for _ in range(rounds):
        t = time.perf_counter()
        results = await audit_replay(histories)
        ours.append(len(histories) / (time.perf_counter() - t))
        assert all(r.error is None for r in results)
        t = time.perf_counter()
        for h in histories:
            await raw.replay_workflow(h)
        base.append(len(histories) / (time.perf_counter() - t))
    o, r = statistics.median(ours), statistics.median(base)
    return {
        "histories": len(histories),
        "audit_replay_per_s": round(o, 1),
        "raw_replayer_per_s": round(r, 1),
        "ratio": round(o / r, 3),
    }


async def scale(stack: BenchStack, open_deals: int, listed_rows: int) -> dict[str, Any]:
    pool, temporal = stack.pool, stack.temporal
    queue = f"scale-{uuid.uuid4().hex[:6]}"
    worker = stack.worker_process(queue)
    try:
        await asyncio.sleep(3)
        idle = rss_mb(worker.pid)
        client = DealflowClient(temporal, pool, stack.settings(queue))
        pinned = load_file(SEVEN)
        rng = random.Random(5)

        async def open_deal(i: int) -> None:
            deal_id = f"open-{i:06d}-{uuid.uuid4().hex[:4]}"
            await client.start_deal("seven-stage", deal_id, "rep", value=1000)
            for stage in pinned.definition.pre_sale[: i % 4]:  # waiting in stages 1 to 4
                facts = {f.fact: fact_value(f, rng) for f in stage.exit_criteria}
                await client.complete_stage(deal_id, stage.id, actor="rep", facts=facts)

        started = time.perf_counter()
        await _gather_limited(open_deals, 50, open_deal)
        loaded = time.perf_counter() - started
        await asyncio.sleep(5)
        held = rss_mb(worker.pid)
        retries = retries_json(client.retries)
    finally:
        stack.stop(worker)
    # the listing: 100,000 projection rows, one stage asked for
    stages = [s.id for s in pinned.definition.stages]
    rows = [
        (
            f"list-{n:06d}",
            "bench-list",
            "v1",
            "rep",
            1.0,
            "open",
            stages[n % len(stages)],
            None,
            None,
            None,
            2,
            0,
            "rep",
            "v1",
        )
        for n in range(listed_rows)
    ]
    await pool.copy_records_to_table(
        "deals",
        records=rows,
        columns=DEAL_COLUMNS,
    )
    await pool.execute("ANALYZE deals")
    lists, scans = [], []
    for _ in range(5):
        t = time.perf_counter()
        found = await list_deals(pool, process="bench-list", stage="presentation", limit=listed_rows)
        lists.append(time.perf_counter() - t)
        t = time.perf_counter()
        await pool.fetch("SELECT deal_id, stage FROM deals WHERE process = 'bench-list'")
        scans.append(time.perf_counter() - t)
    return {
        "open_deals": open_deals,
        "seconds_to_open": round(loaded, 1),
        "worker_rss_idle_mb": round(idle, 1),
        "worker_rss_with_open_deals_mb": round(held, 1),
        "listed_rows": listed_rows,
        "list_one_stage_of_100k_ms": round(statistics.median(lists) * 1000, 1),
        "listed": len(found),
        "read_all_100k_ms": round(statistics.median(scans) * 1000, 1),
        "retries": retries,
    }


def retries_json(counts: RetryCounts) -> dict[str, Any]:
    return {"resent": counts.resent, "lost": dict(sorted(counts.lost.items())), "gave_up": counts.gave_up}


async def run(size: Sizes, args: argparse.Namespace) -> dict[str, Any]:
    async with bench_stack("sysbench") as stack:
        pool, temporal = stack.pool, stack.temporal
        queue = "bench"
        client = DealflowClient(temporal, pool, stack.settings(queue))
        b = Bench(client, temporal, pool, queue)
        result: dict[str, Any] = {"sizes": size.__dict__}
        took: dict[str, float] = {}
        started = time.monotonic()

        def part(name: str) -> None:
            nonlocal started
            took[name] = round(time.monotonic() - started, 1)
            started = time.monotonic()

        # each worker in a process of its own, as deployed; the client drives both from here
        workers = [stack.worker_process(queue, log=stack.tmp / "worker.log"), stack.bare_worker_process(BARE_QUEUE)]
        # for the levers: the same worker without eager activities
        lazy_queue = "bench-lazy"
        workers.append(stack.worker_process(lazy_queue, env={EAGER_ACTIVITIES_ENV_VAR: "0"}))
        try:
            await asyncio.sleep(3)
            part("start")
            print("deal throughput", flush=True)
            pids = {"dealflow_worker": workers[0].pid, "bare_worker": workers[1].pid}
            result["throughput"] = await throughput(
                b, size.deals, size.rounds, size.concurrency, lambda: stack.cpu(**pids)
            )
            part("throughput")
            print("counts per deal, from the histories", flush=True)
            result["per_deal"] = await per_deal(temporal, b.deal_ids, b.bare_ids)
            part("per_deal")
            print("rep latency", flush=True)
            result["latency"] = await latency(b, size.latency_samples)
            part("latency")
            print("start and outcome latency", flush=True)
            result["logged_calls"] = await logged_calls_latency(b, size.logged_samples)
            part("logged_calls")
            print("levers: the log's notification, eager activities", flush=True)
            lazy = DealflowClient(temporal, pool, stack.settings(lazy_queue))
            polling = DealflowClient(temporal, pool, stack.settings(queue))
            polling.log_watch = PollingWatch(pool)
            reason = b.pinned.definition.outcomes.lost.reasons[0]  # type: ignore[union-attr]
            result["levers"] = await levers(client, lazy, polling, reason, size.logged_samples)
            part("levers")
            ids = [
                r["deal_id"]
                for r in await pool.fetch(
                    "SELECT deal_id FROM deals WHERE process = 'seven-stage' AND status = 'won' LIMIT $1",
                    size.replay_histories,
                )
            ]
        finally:
            stack.stop(*workers)
        print("event append", flush=True)
        result["append"] = await append_vs_copy(pool, size.append_deals)
        part("append")
        print("replay", flush=True)
        result["replay"] = await replay_speed(temporal, ids, size.replay_rounds)
        part("replay")
        print("scale", flush=True)
        result["scale"] = await scale(stack, size.open_deals, size.listed_rows)
        part("scale")
        # requests sent again after a lost answer, throughput and latency (scale has its own)
        result["retries"] = {"dealflow": retries_json(client.retries), "bare": retries_json(b.bare_retries)}
        result["part_seconds"] = took
        return result


def _cpu_text(parts: dict[str, float]) -> str:
    return ", ".join(f"{k} {v}" for k, v in parts.items())


def table(r: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    t, lat, a, rp, s = r["throughput"], r["latency"], r["append"], r["replay"], r["scale"]
    oc = r["logged_calls"]
    lv = r["levers"]
    cpu = t["cpu_ms_per_deal"]
    ours, bare = r["per_deal"]["dealflow"], r["per_deal"]["bare"]

    def counts(c: dict[str, Any]) -> str:
        return (
            f"{c['events']['mean']} events, {c['workflow_tasks']['mean']} workflow tasks,"
            f" {c['activity_tasks']['mean']} activity tasks"
        )

    return [
        (
            "deal throughput (end to end)",
            f"{t['dealflow_deals_per_s']} deals/s",
            f"bare workflow {t['bare_deals_per_s']} deals/s",
            f"{t['ratio']} (rounds {min(t['round_ratios'])} to {max(t['round_ratios'])}; target >= 0.85)",
        ),
        (
            "  CPU ms per deal",
            _cpu_text(cpu["dealflow"]),
            _cpu_text(cpu["bare"]),
            f"{round(cpu['dealflow']['total'] / cpu['bare']['total'], 3)}x bare (target <= 1.3)",
        ),
        (
            "  per deal, from the histories",
            counts(ours),
            counts(bare),
            f"events x{r['per_deal']['ratio_of_means'].get('events')},"
            f" workflow tasks x{r['per_deal']['ratio_of_means'].get('workflow_tasks')}",
        ),
        (
            "rep latency p50",
            f"{lat['dealflow_p50_ms']} ms",
            f"bare update {lat['bare_p50_ms']} ms",
            f"{lat['ratio_p50']} (target <= 1.15)",
        ),
        (
            "rep latency p99",
            f"{lat['dealflow_p99_ms']} ms",
            f"bare update {lat['bare_p99_ms']} ms",
            f"{lat['ratio_p99']}",
        ),
        (
            "start, until in the log, p50",
            f"{oc['start_p50_ms']} ms (p99 {oc['start_p99_ms']})",
            f"bare start {oc['bare_start_p50_ms']} ms (p99 {oc['bare_start_p99_ms']})",
            f"{oc['start_ratio_p50']} (target <= 3)",
        ),
        (
            "loss, until in the log, p50",
            f"{oc['lose_p50_ms']} ms (p99 {oc['lose_p99_ms']})",
            f"bare update {oc['bare_update_p50_ms']} ms (p99 {oc['bare_update_p99_ms']})",
            f"{oc['lose_ratio_p50']} (target <= 1.2)",
        ),
        (
            "  start, notified / polled",
            f"{lv['start_p50_ms']} ms",
            f"polling the log {lv['start_polling_p50_ms']} ms",
            f"{lv['notification_vs_polling_start_p50']}",
        ),
        (
            "  start, eager / not",
            f"{lv['start_p50_ms']} ms",
            f"without eager activities {lv['start_without_eager_p50_ms']} ms",
            f"{lv['eager_vs_not_start_p50']}",
        ),
        (
            "  loss, eager / not",
            f"{lv['lose_p50_ms']} ms",
            f"without eager activities {lv['lose_without_eager_p50_ms']} ms",
            f"{lv['eager_vs_not_lose_p50']}",
        ),
        (
            "event append",
            f"{a['append_events_per_s']} events/s",
            f"raw COPY {a['copy_events_per_s']} events/s",
            f"{a['ratio']}",
        ),
        (
            "replay",
            f"{rp['audit_replay_per_s']} histories/s",
            f"raw Replayer {rp['raw_replayer_per_s']} histories/s",
            f"{rp['ratio']}",
        ),
        (
            "worker RSS",
            f"{s['worker_rss_with_open_deals_mb']} MB with {s['open_deals']} open deals",
            f"idle {s['worker_rss_idle_mb']} MB",
            "",
        ),
        (
            "list one stage of 100,000",
            f"{s['list_one_stage_of_100k_ms']} ms ({s['listed']} deals)",
            f"read all 100,000: {s['read_all_100k_ms']} ms",
            "",
        ),
    ]


def show(result: dict[str, Any]) -> None:
    rows = table(result)
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    m, load = result["machine"], result["load"]
    print(f"\n{m['cores']} cores ({m['cpu_model']}), {m['memory_gib']} GiB, Python {m['python']}")
    print(
        f"load average {load['loadavg_before']} before, {load['loadavg_after']} after; other processes used"
        f" {load['others_share_of_cores']:.0%} of the cores ({'alone' if load['alone'] else 'not alone'})"
    )
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)))
    r = result["retries"]
    print(
        f"requests sent again after a lost answer: dealflow {_retries_text(r['dealflow'])}; "
        f"bare {_retries_text(r['bare'])}; scale {_retries_text(result['scale']['retries'])}"
    )


def main() -> None:
    bench_main(__doc__ or "", "system", SIZES, run, show=show)


def _retries_text(r: dict[str, Any]) -> str:
    lost = ", ".join(f"{k} {n}" for k, n in r["lost"].items())
    return f"{r['resent']}" + (f" ({lost})" if lost else "") + (f", {r['gave_up']} given up" if r["gave_up"] else "")


if __name__ == "__main__":
    main()
