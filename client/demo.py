"""`make demo`: simulated reps drive a few hundred deals through the shipped processes.

Everything goes through the real path: the typed client, Temporal updates with validators, the
event-log activity, PostgreSQL. Some reps stall, some skip, some move back, some lose with a
reason, and some send requests that are refused or repeated. The funnel printed at the end is
computed in SQL from the event log, not from the simulator's own counts.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from client.api import DealflowClient, DealflowError, Refused
from client.output import print_table
from definitions.loader import PinnedDefinition, shipped
from definitions.model import FactSpec, FactType, ProcessDefinition
from store.funnel import funnel
from worker.settings import Settings, read_stack

REPS = ["alice", "bob", "carol", "dave", "erin", "frank"]
PROCESS_WEIGHTS = {"seven-stage": 0.5, "three-phase": 0.25, "sales-factory": 0.25}


class DemoFailed(DealflowError):
    pass


@dataclass
class Tally:
    outcomes: Counter[str] = field(default_factory=Counter)
    refusals: Counter[str] = field(default_factory=Counter)
    repeats: int = 0
    events: int = 0


def fact_value(spec: FactSpec, rng: random.Random) -> str:
    """A plausible answer, as a rep would type it on the command line."""
    match spec.type:
        case FactType.boolean:
            return rng.choice(["yes", "no"]) if spec.fact not in {"can_afford", "active_need"} else "yes"
        case FactType.number:
            return str(rng.randrange(5, 500) * 100)
        case FactType.integer:
            return str(rng.randrange(0, 5))
        case FactType.date:
            return f"2026-{rng.randrange(1, 13):02d}-{rng.randrange(1, 29):02d}"
        case FactType.choice:
            return rng.choice(spec.options)
        case _:
            return rng.choice(["CFO", "head of sales", "procurement", "CTO"]) + f" ({spec.fact.replace('_', ' ')})"


async def simulate_deal(
    client: DealflowClient, pinned: PinnedDefinition, deal_id: str, rng: random.Random, tally: Tally
) -> None:
    d: ProcessDefinition = pinned.definition
    rep = rng.choice(REPS)
    await client.start_deal(
        d.name,
        deal_id,
        rep,
        value=float(rng.randrange(10, 400) * 250),
        fields={"customer": f"Customer {deal_id[-4:]}", "title": f"{d.title} opportunity"},
        version=pinned.version,
    )
    stage = d.stages[0].id
    moved_back = False
    visited: set[str] = set()
    last_seq = 2
    while True:
        await asyncio.sleep(rng.uniform(0.0, 0.15))  # reps take their time; durations differ
        spec = d.stage(stage)
        roll = rng.random()
        lost_at = stage in d.lost_from()
        if not spec.post_sale and roll < 0.05:
            tally.outcomes["stalled"] += 1
            break
        if lost_at and d.outcomes.lost and roll < 0.15:
            result = await client.lose(deal_id, rng.choice(d.outcomes.lost.reasons), actor=rep, note="simulated")
            last_seq = result.last_seq
            tally.outcomes["lost"] += 1
            break
        part = d.post_sale if spec.post_sale else d.pre_sale
        later = [s.id for s in part][[s.id for s in part].index(stage) + 2 :]
        if spec.moves.skip.allowed and later and roll < 0.25:
            result = await client.move(deal_id, later[0], actor=rep, reason="buyer already past this step")
            stage, last_seq = later[0], result.last_seq
            continue
        earlier = [s.id for s in part][: [s.id for s in part].index(stage)]
        if spec.moves.back.allowed and earlier and not moved_back and roll < 0.32:
            moved_back = True
            result = await client.move(deal_id, earlier[-1], actor=rep, reason="new stakeholder appeared")
            stage, last_seq = earlier[-1], result.last_seq
            continue
        facts: dict[str, Any] = {f.fact: fact_value(f, rng) for f in spec.exit_criteria}
        first_visit = stage not in visited
        visited.add(stage)
        if facts and first_visit and rng.random() < 0.1:  # a hurried rep forgets the exit criteria
            try:
                await client.complete_stage(deal_id, stage, actor=rep)
            except Refused as exc:
                tally.refusals[exc.code] += 1
        request_id = str(uuid.uuid4())
        result = await client.complete_stage(deal_id, stage, actor=rep, facts=facts, request_id=request_id)
        if rng.random() < 0.05:  # a flaky network makes the client send it again
            again = await client.complete_stage(deal_id, stage, actor=rep, facts=facts, request_id=request_id)
            if again != result:
                raise AssertionError(f"repeated request {request_id} answered {again}, first {result}")
            tally.repeats += 1
        last_seq = result.last_seq
        if result.status == "won" and not spec.post_sale:
            tally.outcomes["won"] += 1
            if result.stage is None or rng.random() < 0.5:  # half the customers are followed up to the end
                break
        if result.stage is None:
            break
        stage = result.stage
    tally.events += last_seq


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 120:
        return f"{seconds:.1f} s"
    return f"{seconds / 3600:.1f} h"


async def _wait_for_log(client: DealflowClient, prefix: str, expected: int, timeout: float = 120) -> int:
    deadline = time.monotonic() + timeout
    while True:
        n = int(await client.pool.fetchval("SELECT count(*) FROM deal_events WHERE deal_id LIKE $1", prefix + "%"))
        if n >= expected or time.monotonic() > deadline:
            return n
        await asyncio.sleep(0.2)


async def drive(client: DealflowClient, *, deals: int, seed: int, concurrency: int) -> None:
    rng = random.Random(seed)
    pinned = {}
    for path in shipped():
        dep = await client.deploy(path, deployed_by="ops-demo")
        pinned[dep.name] = await client.definition(dep.name, dep.version)
        print(f"deployed {dep.name}@{dep.version} ({dep.stages} stages){'' if dep.created else ' - unchanged'}")
    run = f"demo-{uuid.uuid4().hex[:6]}-"
    tally = Tally()
    gate = asyncio.Semaphore(concurrency)
    names = list(PROCESS_WEIGHTS)
    plan = [
        (f"{run}{i:04d}", rng.choices(names, weights=list(PROCESS_WEIGHTS.values()))[0], rng.randrange(1 << 30))
        for i in range(deals)
    ]

    errors: list[str] = []

    async def one(deal_id: str, process: str, deal_seed: int) -> None:
        async with gate:
            try:
                await simulate_deal(client, pinned[process], deal_id, random.Random(deal_seed), tally)
            except Exception as exc:  # reported below: the demo must say what failed, not hide it
                errors.append(f"{deal_id}: {type(exc).__name__}: {exc}")

    started = time.monotonic()
    print(f"simulating {deals} deals ({concurrency} reps at a time), ids {run}NNNN ...", flush=True)
    await asyncio.gather(*(one(*p) for p in plan))
    elapsed = time.monotonic() - started
    if errors:
        raise DemoFailed(f"{len(errors)} of {deals} deals failed; first: " + "; ".join(errors[:3]))
    logged = await _wait_for_log(client, run, tally.events)
    print(
        f"\n{deals} deals in {elapsed:.1f} s: "
        + ", ".join(f"{k} {v}" for k, v in sorted(tally.outcomes.items()))
        + f"; {sum(tally.refusals.values())} requests refused ({dict(tally.refusals)}),"
        f" {tally.repeats} repeated requests answered without recording"
    )
    print(f"event log: {logged} events in PostgreSQL (the deals recorded {tally.events})")
    for name, p in pinned.items():
        rows = await funnel(client.pool, p.definition, deal_prefix=run)
        print(f"\nFunnel: {name}@{p.version} (from the event log, SQL)")
        print_table(
            ["stage", "phase", "entered", "completed", "skipped", "back", "lost", "conv. to next", "median time"],
            [
                [
                    r.stage,
                    r.phase,
                    r.entered,
                    r.completed,
                    r.skipped,
                    r.moved_back,
                    r.lost,
                    "-" if r.conversion is None else f"{r.conversion:.0%}",
                    _duration(r.median_seconds),
                ]
                for r in rows
            ],
        )


async def run_demo(*, deals: int, seed: int, concurrency: int) -> None:
    from worker.run import run_worker
    from worker.stack import EmbeddedStack

    if read_stack() is not None:  # `dealflow dev` is running: use it and its worker
        settings = Settings.resolve()
        print(f"using the running embedded stack ({settings.temporal_address})")
        client = await DealflowClient.connect(settings)
        try:
            await drive(client, deals=deals, seed=seed, concurrency=concurrency)
        finally:
            await client.close()
        return
    stack = EmbeddedStack()
    settings = stack.start()
    print(
        f"embedded stack: Temporal {settings.temporal_address}"
        f"{' (UI ' + stack.ui_url + ')' if stack.ui_url else ''}, PostgreSQL {settings.database_url}"
    )
    stop = asyncio.Event()
    worker = asyncio.create_task(run_worker(settings, stop))
    try:
        client = await DealflowClient.connect(settings)
        try:
            await drive(client, deals=deals, seed=seed, concurrency=concurrency)
        finally:
            await client.close()
    finally:
        stop.set()
        await worker
        stack.stop()
