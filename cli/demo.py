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
from datetime import UTC, datetime, timedelta
from typing import Any

from app.readable import duration_text
from cli.output import print_table
from cli.report import write_report
from client.api import DealflowClient, DealflowError, Refused
from definitions.loader import PinnedDefinition, shipped
from definitions.model import FactSpec, ProcessDefinition
from store import demo_counts
from store.metrics import Filters, compute
from worker.settings import Settings, home, outbox_dir, proposals_dir, read_stack

REPS = ["alice", "bob", "carol", "dave", "erin", "frank"]
# one business day passes in about 1.7 s, so reminders, escalations and whole cadences happen
# while you watch; the durations recorded in events are the compressed ones
TIME_SCALE = 1 / 50_000
# the processes simulated (every shipped one is deployed). sales-factory-teams is not: its deals
# pass between teams, and a simulated rep here acts on a deal from start to end whoever owns it,
# which would show every handoff as never taken up
PROCESS_WEIGHTS = {"seven-stage": 0.5, "three-phase": 0.25, "sales-factory": 0.25}


class DemoFailed(DealflowError):
    pass


@dataclass
class Tally:
    outcomes: Counter[str] = field(default_factory=Counter)
    refusals: Counter[str] = field(default_factory=Counter)
    repeats: int = 0
    replies: int = 0


# the demo's buyers can afford it and need it (shipped processes ask these yes/no at the start)
ALWAYS_YES = frozenset({"can_afford", "active_need"})


def fact_value(spec: FactSpec, rng: random.Random) -> str:
    """A plausible answer, as a rep would type it on the command line (the type's demo value)."""
    if spec.fact in ALWAYS_YES:
        return "yes"
    return spec.kind.demo(spec, rng)


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
        fields={
            "customer": f"Customer {deal_id[-4:]}",
            "title": f"{d.title} opportunity",
            "contact": f"buyer@c{deal_id[-4:]}.example",
        },
        version=pinned.version,
        time_scale=TIME_SCALE,
    )
    stage = d.stages[0].id
    moved_back = False
    visited: set[str] = set()
    while True:
        await asyncio.sleep(rng.uniform(0.0, 0.15))  # reps take their time; durations differ
        spec = d.stage(stage)
        roll = rng.random()
        lost_at = stage in d.lost_from()
        if not spec.post_sale and roll < 0.05:
            tally.outcomes["stalled"] += 1
            break
        if lost_at and d.outcomes.lost and roll < 0.15:
            await client.lose(deal_id, rng.choice(d.outcomes.lost.reasons), actor=rep, note="simulated")
            tally.outcomes["lost"] += 1
            break
        part = d.post_sale if spec.post_sale else d.pre_sale
        later = [s.id for s in part][[s.id for s in part].index(stage) + 2 :]
        if spec.moves.skip.allowed and later and roll < 0.25:
            await client.move(deal_id, later[0], actor=rep, reason="buyer already past this step")
            stage = later[0]
            continue
        earlier = [s.id for s in part][: [s.id for s in part].index(stage)]
        if spec.moves.back.allowed and earlier and not moved_back and roll < 0.32:
            moved_back = True
            await client.move(deal_id, earlier[-1], actor=rep, reason="new stakeholder appeared")
            stage = earlier[-1]
            continue
        if spec.cadence and rng.random() < 0.3:  # the buyer answers one of the follow-ups
            await asyncio.sleep(rng.uniform(1.0, 6.0))
            await client.record_response(deal_id, actor=rep, kind=rng.choice(["replied", "replied", "meeting_booked"]))
            tally.replies += 1
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
        if result.status == "won" and not spec.post_sale:
            tally.outcomes["won"] += 1
            if result.stage is None or rng.random() < 0.5:  # half the customers are followed up to the end
                break
        if result.stage is None:
            break
        stage = result.stage


async def _settled(client: DealflowClient, prefix: str, timeout: float = 60) -> int:
    """The number of logged events once the log has stopped growing for longer than a deal's
    flush window (the last appends are in)."""
    deadline = time.monotonic() + timeout
    polls = 4 + int(2 * client.log_flush_seconds)  # at 0.5 s each
    seen, quiet = -1, 0
    while quiet < polls and time.monotonic() < deadline:
        n = await demo_counts.events(client.pool, prefix)
        quiet = quiet + 1 if n == seen else 0
        seen = n
        await asyncio.sleep(0.5)
    return seen


async def _wait_for_cadences(client: DealflowClient, prefix: str, timeout: float = 150) -> dict[str, int]:
    """Cadences of stalled deals run to their last touch; the report waits for them."""
    deadline = time.monotonic() + timeout
    while True:
        row = await demo_counts.effects(client.pool, prefix)
        if row["cadences"] <= row["completed"] + row["by_reply"] + row["by_end"] or time.monotonic() > deadline:
            return row
        await asyncio.sleep(1)


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
    since = datetime.now(UTC) - timedelta(seconds=5)  # this run's deals, not earlier demos'
    print(f"simulating {deals} deals ({concurrency} reps at a time), ids {run}NNNN ...", flush=True)
    await asyncio.gather(*(one(*p) for p in plan))
    elapsed = time.monotonic() - started
    if errors:
        raise DemoFailed(f"{len(errors)} of {deals} deals failed; first: " + "; ".join(errors[:3]))
    print("waiting for the follow-up cadences of stalled deals to finish ...", flush=True)
    await _wait_for_cadences(client, run)
    logged = await _settled(client, run)
    effects = await demo_counts.effects(client.pool, run)
    print(
        f"\n{deals} deals in {elapsed:.1f} s: "
        + ", ".join(f"{k} {v}" for k, v in sorted(tally.outcomes.items()))
        + f"; {sum(tally.refusals.values())} requests refused ({dict(tally.refusals)}),"
        f" {tally.repeats} repeated requests answered without recording"
    )
    print(f"event log: {logged} events in PostgreSQL")
    outbox = await demo_counts.touches_sent(client.pool, run)
    print(
        f"follow-up: {effects['cadences']} cadences, {effects['touches']} touches sent"
        f" ({effects['touches_failed']} failed), {effects['by_reply']} cadences stopped by buyer replies"
        f" ({tally.replies} replies), {effects['by_end']} by the deal ending, {effects['completed']} ran to the end"
    )
    print(
        f"reminders: {effects['breaches']} SLA breaches, {effects['escalations']} escalations;"
        f" proposals: {effects['proposals']} generated, {effects['proposals_failed']} refused for missing facts"
    )
    print(f"outbox: {outbox} touches recorded as sent; messages as files in {outbox_dir()}")
    print(f"proposals: {proposals_dir()}")
    for name, p in pinned.items():
        if name not in PROCESS_WEIGHTS:
            continue  # deployed, not simulated: no funnel to show
        m = await compute(client.pool, p.definition, Filters(process=name, version=p.version, since=since))
        print(f"\nFunnel: {name}@{p.version} (computed in SQL from the event log; definitions in docs/metrics.md)")
        print_table(
            ["stage", "phase", "entered", "completed", "skipped", "back", "lost", "conv. to next", "median time"],
            [
                [
                    s.stage,
                    s.phase,
                    s.entered,
                    s.completed,
                    s.skipped,
                    s.moved_back,
                    s.lost,
                    "-" if s.conversion_strict is None else f"{s.conversion_strict:.0%}",
                    duration_text(s.first_entry.median),
                ]
                for s in m.stages
                if not p.definition.stage(s.stage).post_sale
            ],
        )
    report = await write_report(client, home() / "report")
    print(f"\nreport written: {report}")


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
