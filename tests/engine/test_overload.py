"""Correct answers under overload: a request whose answer is lost (its call to Temporal timed out,
its connection dropped) is sent again under the same id until it is answered, within its
deadline; past the deadline the caller is told the outcome is unknown (`OutcomeUnknown`, exit 3
from the CLI), and repeating the request under the same id answers it.

The workload test drives forty deals at once through a worker with two workflow task slots, one
activity slot and one local activity slot, with every call to Temporal cut off after 0.2 s, so
that updates really time out; every deal's log must then hold exactly the events of its
requests, each once, as a deal walked the same way without load does.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any, cast

import asyncpg
import pytest
from temporalio.client import Client, WorkflowUpdateRPCTimeoutOrCancelledError
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.service import RetryConfig, RPCError, RPCStatusCode
from temporalio.testing import WorkflowEnvironment

from app.retry import Deadline, NoAnswer, RetryCounts, lost_answer, until_answered
from audit.history import deal_events, fetch_deal
from client.api import DealflowClient, OutcomeUnknown, Refused
from definitions.loader import PinnedDefinition
from domain.commands import ActionResult
from domain.events import DealEvent
from domain.state import fold
from store import event_log
from tests.support import logged, new_deal_id
from tests.support.cli import dealflow
from worker.run import WorkerSlots, build_worker
from worker.settings import REQUEST_DEADLINE_ENV_VAR, RPC_TIMEOUT_ENV_VAR, Settings, SettingsError

REPS = 40  # deals driven at once, against two workflow task slots and one activity slot
RPC_TIMEOUT = 0.2  # seconds: each call to Temporal (an update waits for the deal's workflow task)
DEADLINE = 30.0  # seconds: one request, every attempt included

FIRST = {"buying_process_started": True}
SECOND = {"will_buy": True, "decision_maker": "the CFO"}
LAST = {"signed_value": 18000}


# --- the retry loop on its own -------------------------------------------------------------


@pytest.mark.unit
def test_what_counts_as_a_lost_answer() -> None:
    assert lost_answer(WorkflowUpdateRPCTimeoutOrCancelledError()) == "rpc_timeout"
    for status, why in [
        (RPCStatusCode.DEADLINE_EXCEEDED, "rpc_timeout"),
        (RPCStatusCode.UNAVAILABLE, "connection"),
        (RPCStatusCode.CANCELLED, "connection"),
        (RPCStatusCode.RESOURCE_EXHAUSTED, "overloaded"),
    ]:
        assert lost_answer(RPCError("x", status, b"")) == why
    assert (
        lost_answer(RPCError("transport error: connection reset by peer", RPCStatusCode.UNKNOWN, b"")) == "connection"
    )
    assert lost_answer(ConnectionResetError()) == "connection"
    assert lost_answer(RuntimeError("Failed client connect: Server connection error")) == "connection"
    assert lost_answer(RuntimeError("anything else")) is None
    # answers, not lost ones
    for status in (RPCStatusCode.NOT_FOUND, RPCStatusCode.FAILED_PRECONDITION, RPCStatusCode.INVALID_ARGUMENT):
        assert lost_answer(RPCError("x", status, b"")) is None
    assert lost_answer(RPCError("something else", RPCStatusCode.UNKNOWN, b"")) is None
    assert lost_answer(ValueError()) is None


@pytest.mark.unit
def test_the_deadline_and_the_rpc_timeout_are_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(REQUEST_DEADLINE_ENV_VAR, raising=False)
    monkeypatch.delenv(RPC_TIMEOUT_ENV_VAR, raising=False)
    defaults = Settings.resolve()
    assert (defaults.request_deadline_seconds, defaults.rpc_timeout_seconds) == (60.0, None)
    monkeypatch.setenv(REQUEST_DEADLINE_ENV_VAR, "90")
    monkeypatch.setenv(RPC_TIMEOUT_ENV_VAR, "0.2")
    given = Settings.resolve()
    assert (given.request_deadline_seconds, given.rpc_timeout_seconds) == (90.0, 0.2)
    for var, bad in [(REQUEST_DEADLINE_ENV_VAR, "0"), (REQUEST_DEADLINE_ENV_VAR, "3601"), (RPC_TIMEOUT_ENV_VAR, "nan")]:
        monkeypatch.setenv(var, bad)
        with pytest.raises(SettingsError, match=var):
            Settings.resolve()
        monkeypatch.delenv(var)


class TimingOutHandle:
    """A deal's workflow handle whose every update call times out, as under overload."""

    def __init__(self) -> None:
        self.ids: list[str] = []
        self.rpc_timeouts: list[timedelta | None] = []

    async def execute_update(self, update: Any, arg: Any, *, id: str, rpc_timeout: timedelta | None) -> Any:
        self.ids.append(id)
        self.rpc_timeouts.append(rpc_timeout)
        await asyncio.sleep(0.05)
        raise WorkflowUpdateRPCTimeoutOrCancelledError()


class FakeTemporal:
    def __init__(self, handle: TimingOutHandle):
        self.handle = handle

    def get_workflow_handle(self, workflow_id: str) -> TimingOutHandle:
        return self.handle


@pytest.mark.unit
async def test_an_update_that_keeps_timing_out_ends_in_outcome_unknown_at_its_deadline() -> None:
    handle = TimingOutHandle()
    settings = Settings(source="tests", request_deadline_seconds=1.0, rpc_timeout_seconds=0.05)
    client = DealflowClient(cast(Client, FakeTemporal(handle)), cast(asyncpg.Pool, None), settings)
    started = time.monotonic()
    with pytest.raises(OutcomeUnknown) as caught:
        await client.complete_stage("d-1", "first-contact", actor="alice", facts=FIRST, request_id="req-7")
    took = time.monotonic() - started
    assert 1.0 <= took < 1.5  # bounded by the deadline, not by the number of attempts
    assert caught.value.code == "outcome_unknown" and caught.value.request_id == "req-7"
    assert caught.value.message == "outcome unknown after 1 s: deal 'd-1' may or may not have recorded it"
    about = caught.value.input_at_fault  # each face says how to repeat it: the CLI's flag, the API's header
    assert (about["input"], about["request_id"]) == ("request_id", "req-7")
    # asked again and again, always as the same update, each call cut off at the RPC timeout
    assert len(handle.ids) >= 4 and set(handle.ids) == {"req-7"}
    assert set(handle.rpc_timeouts) == {timedelta(seconds=0.05)}
    assert client.retries.lost["rpc_timeout"] == len(handle.ids)
    assert client.retries.resent == len(handle.ids) - 1 and client.retries.gave_up == 1


@pytest.mark.unit
async def test_an_attempt_never_runs_past_the_deadline() -> None:
    """With no RPC timeout the SDK would wait for the answer; the deadline still cuts it."""
    calls: list[int] = []

    async def hangs(attempt: int) -> None:
        calls.append(attempt)
        await asyncio.sleep(60)

    counts = RetryCounts()
    started = time.monotonic()
    with pytest.raises(NoAnswer):
        await until_answered(hangs, Deadline(0.3), counts, what="test")
    assert time.monotonic() - started < 0.6 and calls == [0]
    assert counts.gave_up == 1


@pytest.mark.unit
async def test_an_answer_after_lost_ones_is_returned_and_an_answer_that_is_an_error_is_raised() -> None:
    counts = RetryCounts()

    async def third_time(attempt: int) -> str:
        if attempt < 2:
            raise RPCError("connection reset", RPCStatusCode.UNAVAILABLE, b"")
        return "answer"

    assert await until_answered(third_time, Deadline(10), counts, what="test") == "answer"
    assert counts.lost == Counter({"connection": 2}) and counts.resent == 2

    async def refused(attempt: int) -> str:
        raise Refused("no", code="missing_facts")

    with pytest.raises(Refused):
        await until_answered(refused, Deadline(10), counts, what="test")
    assert counts.resent == 2


@pytest.mark.unit
async def test_a_caller_cancelling_the_request_is_not_retried() -> None:
    """The SDK turns a cancelled update call into WorkflowUpdateRPCTimeoutOrCancelledError: the
    loop must let the cancellation through instead of sending the update again."""
    calls: list[int] = []

    async def update(attempt: int) -> None:
        calls.append(attempt)
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError as err:
            raise WorkflowUpdateRPCTimeoutOrCancelledError() from err

    task = asyncio.create_task(until_answered(update, Deadline(30), RetryCounts(), what="test"))
    await asyncio.sleep(0.1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert calls == [0]


async def test_an_unreachable_server_ends_in_outcome_unknown(pool: asyncpg.Pool) -> None:
    """A real client whose server is gone (nothing listens on the port): connection errors,
    then the deadline."""
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
    temporal = await Client.connect(f"127.0.0.1:{port}", lazy=True, data_converter=pydantic_data_converter)
    settings = Settings(
        temporal_address=f"127.0.0.1:{port}", source="tests", request_deadline_seconds=2.0, rpc_timeout_seconds=0.3
    )
    client = DealflowClient(temporal, pool, settings)
    started = time.monotonic()
    with pytest.raises(OutcomeUnknown, match=r"outcome unknown after 2 s: .* may or may not have recorded it") as lost:
        await client.lose("d-gone", "price", actor="alice", request_id="gone-1")
    assert lost.value.request_id == "gone-1"
    assert 2.0 <= time.monotonic() - started < 3.0
    assert client.retries.resent >= 1 and client.retries.gave_up == 1


class Proxy:
    """A TCP proxy in front of Temporal that can drop every connection and stop listening, and
    come back on the same port: a network that fails under a connected client."""

    def __init__(self, target: str):
        self.host, port = target.rsplit(":", 1)
        self.target_port = int(port)
        self.port = 0
        self.server: asyncio.Server | None = None
        self.open: set[asyncio.StreamWriter] = set()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def up(self) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        self.port = self.server.sockets[0].getsockname()[1]

    async def down(self) -> None:
        """Stop listening and reset every open connection."""
        assert self.server is not None
        self.server.close()
        for writer in list(self.open):
            writer.transport.abort()
        self.open.clear()
        await self.server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(self.host, self.target_port)
        self.open |= {writer, up_writer}

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                dst.transport.abort()

        await asyncio.gather(pump(reader, up_writer), pump(up_reader, writer))


async def test_an_update_whose_connection_drops_while_it_waits_is_answered_once(
    temporal_env: WorkflowEnvironment, pool: asyncpg.Pool, settings: Settings, deployed: dict[str, PinnedDefinition]
) -> None:
    """The update reaches Temporal and waits for the deal's worker; the connection is reset and the
    network stays down for two seconds; the client keeps asking under the same id, and once the
    network and the worker are back it gets the one answer.

    The SDK retries a call that finds no connection for up to ten seconds by itself; this client
    is told to give up after one retry, so that the drop reaches dealflow's loop."""
    proxy = Proxy(settings.temporal_address)
    await proxy.up()
    brief = RetryConfig(max_retries=1, max_elapsed_time_millis=300)
    temporal = await Client.connect(proxy.address, data_converter=pydantic_data_converter, retry_config=brief)
    queue = f"dropped-{uuid.uuid4().hex[:8]}"
    dropping = DealflowClient(
        temporal, pool, replace(settings, task_queue=queue, request_deadline_seconds=30, rpc_timeout_seconds=5)
    )
    deal = new_deal_id("dropped")
    await dropping.start_deal("three-phase", deal, "alice")
    call = asyncio.create_task(dropping.complete_stage(deal, "first-contact", actor="alice", facts=FIRST))
    await asyncio.sleep(1.0)  # admitted, waiting for a worker
    assert not call.done()
    await proxy.down()
    await asyncio.sleep(2.0)
    await proxy.up()
    async with build_worker(temporal_env.client, pool, queue):
        result = await asyncio.wait_for(call, 30)
        assert result.stage == "demonstration"
        await logged(pool, deal, result.last_seq)
        events: list[DealEvent] = await event_log.read(pool, deal)
        assert [e.seq for e in events if e.request_id == result.request_id] == list(
            range(result.first_seq, result.last_seq + 1)
        )
        assert [e.type for e in events].count("StageCompleted") == 1
        assert dropping.retries.lost["connection"] >= 1 and dropping.retries.gave_up == 0
        await dropping.lose(deal, "price", actor="alice")
    await proxy.down()


# --- starts whose answer is lost ---------------------------------------------------------------


@pytest.fixture
def lost_start(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The first start call of a test reaches Temporal (or not) but its answer is lost."""
    real = Client.start_workflow
    calls: list[str] = []
    mode: list[str] = []

    async def lossy(self: Client, *args: Any, **kwargs: Any) -> Any:
        calls.append(kwargs["id"])
        if len(calls) == 1:
            if mode[0] == "started":
                await real(self, *args, **kwargs)
            elif mode[0] == "another":
                start = args[1].start.model_copy(update={"owner": "mallory", "actor": "mallory"})
                await real(self, args[0], args[1].model_copy(update={"start": start}), **kwargs)
            raise RPCError("deadline exceeded", RPCStatusCode.DEADLINE_EXCEEDED, b"")
        return await real(self, *args, **kwargs)

    monkeypatch.setattr(Client, "start_workflow", lossy)
    return mode


async def test_a_start_whose_answer_is_lost_after_it_started_the_deal_is_answered_started(
    client: DealflowClient, temporal_client: Client, lost_start: list[str], deployed: dict[str, PinnedDefinition]
) -> None:
    lost_start.append("started")
    deal = new_deal_id("lost-start")
    before = client.retries.lost["rpc_timeout"]
    started = await client.start_deal("three-phase", deal, "alice", value=1000)
    assert started.stage == "first-contact" and client.retries.lost["rpc_timeout"] == before + 1
    state = await client.logged_state(deal, min_seq=1)
    assert state.owner == "alice" and state.last_seq >= 1
    # a start of the same deal by a new request is still refused
    with pytest.raises(Refused) as caught:
        await client.start_deal("three-phase", deal, "alice", value=1000)
    assert caught.value.code == "deal_exists"


async def test_a_start_whose_answer_is_lost_while_another_start_took_the_id_is_refused(
    client: DealflowClient, temporal_client: Client, lost_start: list[str], deployed: dict[str, PinnedDefinition]
) -> None:
    lost_start.append("another")
    deal = new_deal_id("lost-start")
    with pytest.raises(Refused) as caught:
        await client.start_deal("three-phase", deal, "alice")
    assert caught.value.code == "deal_exists"
    state = await client.logged_state(deal, min_seq=1)
    assert state.owner == "mallory"


async def test_a_start_whose_answer_is_lost_before_it_reached_temporal_starts_the_deal(
    client: DealflowClient, temporal_client: Client, lost_start: list[str], deployed: dict[str, PinnedDefinition]
) -> None:
    lost_start.append("not sent")
    deal = new_deal_id("lost-start")
    await client.start_deal("three-phase", deal, "alice")
    state = await client.logged_state(deal, min_seq=1)
    assert state.owner == "alice"


# --- the CLI -----------------------------------------------------------------------------------


async def test_the_cli_says_outcome_unknown_with_exit_3_and_the_repeat_answers_it(
    cli_env: dict[str, str],
    temporal_env: WorkflowEnvironment,
    pool: asyncpg.Pool,
    settings: Settings,
    deployed: dict[str, PinnedDefinition],
) -> None:
    """A deal whose worker is away: the CLI's update times out until its deadline and exits 3,
    naming the request id; once the worker is back, the same command with that request id is
    answered, and the stage is completed once."""
    queue = f"away-{uuid.uuid4().hex[:8]}"
    away = DealflowClient(temporal_env.client, pool, replace(settings, task_queue=queue))
    deal = new_deal_id("away")
    await away.start_deal("three-phase", deal, "alice")
    env = {**cli_env, "DEALFLOW_REQUEST_DEADLINE_SECONDS": "1.5", "DEALFLOW_RPC_TIMEOUT_SECONDS": "0.2"}
    args = ["deal", "complete", deal, "--stage", "first-contact", "--as", "alice", "--fact"]
    args += ["buying_process_started=yes", "--request-id", "away-1"]
    unknown = await dealflow(env, *args)
    assert unknown.code == 3 and unknown.out == ""
    assert unknown.err == (
        f"dealflow: outcome unknown after 1.5 s: deal '{deal}' may or may not have recorded it; "
        "repeat with --request-id away-1\n"
    )
    async with build_worker(temporal_env.client, pool, queue):
        answered = await dealflow(cli_env, *args, "--json")
        assert answered.code == 0, answered.err
        result = answered.json()
        assert result["request_id"] == "away-1" and result["stage"] == "demonstration"
        again = await dealflow(cli_env, *args, "--json")
        assert again.code == 0 and again.json() == result
        await logged(pool, deal, result["last_seq"])
        events: list[DealEvent] = await event_log.read(pool, deal)
        assert [e.seq for e in events if e.request_id == "away-1"] == list(
            range(result["first_seq"], result["last_seq"] + 1)
        )
        assert [e.type for e in events].count("StageCompleted") == 1
        await away.lose(deal, "price", actor="alice")


# --- the workload under deliberate overload --------------------------------------------------------


@dataclass
class Walk:
    """One deal walked through its stages by known request ids, and what each request got."""

    deal_id: str
    answers: dict[str, ActionResult] = field(default_factory=dict)
    refused: dict[str, str] = field(default_factory=dict)
    requests: int = 0  # the start and the rep's requests, a repeat counted again
    unknown: int = 0  # OutcomeUnknown, after which the rep repeated the request

    def rid(self, n: int) -> str:
        return f"{self.deal_id}-r{n}"


async def walk(client: DealflowClient, deal_id: str) -> Walk:
    """start; a completion missing its fact (refused); the three stages, the last by winning; the
    second completion repeated by the rep. A request whose outcome is unknown is repeated under
    its id, as the message says."""
    w = Walk(deal_id)

    async def ask(n: int, action: Any, *args: Any, **kwargs: Any) -> None:
        w.requests += 1
        while True:
            try:
                w.answers[w.rid(n)] = await action(deal_id, *args, actor="rep", request_id=w.rid(n), **kwargs)
                return
            except OutcomeUnknown:
                w.unknown += 1
            except Refused as exc:
                w.refused[w.rid(n)] = exc.code
                return

    w.requests += 1
    await client.start_deal("three-phase", deal_id, "rep", value=1000.0)
    await ask(0, client.complete_stage, "first-contact", facts={})
    await ask(1, client.complete_stage, "first-contact", facts=FIRST)
    await ask(2, client.complete_stage, "demonstration", facts=SECOND)
    first = w.answers[w.rid(2)]
    await ask(2, client.complete_stage, "demonstration", facts=SECOND)  # the rep sends it twice
    assert w.answers[w.rid(2)] == first
    await ask(3, client.win, facts=LAST)
    return w


def shape(events: list[DealEvent], deal_id: str) -> list[tuple[str, str | None, str | None]]:
    """A deal's events with its own request ids named by their number: equal for every deal
    walked the same way."""
    return [(e.type, e.stage, e.request_id.removeprefix(deal_id) if e.request_id else None) for e in events]


@pytest.fixture(scope="module")
async def overloaded(
    temporal_env: WorkflowEnvironment, pool: asyncpg.Pool, settings: Settings
) -> AsyncIterator[DealflowClient]:
    """A client whose calls to Temporal are cut off after RPC_TIMEOUT, and a worker of its own
    with two workflow task slots, one activity slot and one local activity slot.

    Two, not one: a worker that caches workflows needs at least two workflow task slots (the
    SDK's rule). With one, its single poll on the shared queue holds the slot while the deals'
    tasks wait on the sticky queue until they time out there, ten seconds each.
    """
    queue = f"overload-{uuid.uuid4().hex[:8]}"
    tight = replace(settings, task_queue=queue, rpc_timeout_seconds=RPC_TIMEOUT, request_deadline_seconds=DEADLINE)
    slots = WorkerSlots(workflow_tasks=2, activities=1, local_activities=1)
    async with build_worker(temporal_env.client, pool, queue, slots=slots):
        yield DealflowClient(temporal_env.client, pool, tight)


async def test_under_overload_every_request_is_answered_once_and_recorded_once(
    overloaded: DealflowClient,
    client: DealflowClient,
    temporal_client: Client,
    pool: asyncpg.Pool,
    deployed: dict[str, PinnedDefinition],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="dealflow.client")
    # the reference: one deal walked the same way on the session's ordinary worker and client
    reference = await walk(client, new_deal_id("calm"))
    counts = overloaded.retries

    def update_timeouts() -> list[str]:
        """The client logs each lost answer: "request R: answer lost (rpc_timeout: <error>) ..."."""
        lost = [r.getMessage() for r in caplog.records if r.name == "dealflow.client"]
        return [m for m in lost if m.startswith("request ") and "WorkflowUpdateRPCTimeoutOrCancelledError" in m]

    walks: list[Walk] = []
    started = time.monotonic()
    # REPS reps at once, all starting together; on a machine fast enough to absorb a batch without
    # one update timing out, another batch (at most three in all)
    for _ in range(3):
        walks += await asyncio.gather(*(walk(overloaded, new_deal_id("busy")) for _ in range(REPS)))
        if update_timeouts():
            break
    took = time.monotonic() - started
    updates = update_timeouts()
    print(
        f"\n{len(walks)} deals, {sum(w.requests for w in walks)} requests in {took:.1f} s "
        f"through 2 workflow task slots, RPC timeout {RPC_TIMEOUT} s; {counts.summary()} "
        f"({len(updates)} of them updates timing out in the SDK); outcome unknown {sum(w.unknown for w in walks)}"
    )
    # the path was exercised: updates really timed out at the RPC level and were sent again
    assert counts.lost["rpc_timeout"] > 0 and counts.resent > 0 and updates

    async def logged(w: Walk) -> list[DealEvent]:
        last = w.answers[w.rid(3)].last_seq
        for _ in range(600):
            events = await event_log.read(pool, w.deal_id)
            if len(events) >= last:
                return events
            await asyncio.sleep(0.1)
        raise AssertionError(f"{w.deal_id}: the log did not reach seq {last}")

    expected = shape(await logged(reference), reference.deal_id)
    assert [t for t, _, _ in expected].count("StageCompleted") == 3 and expected[-1][0] == "StageEntered"
    for w in [reference, *walks]:
        # every request answered exactly once, or refused clearly with nothing recorded
        assert w.refused == {w.rid(0): "missing_facts"}
        assert set(w.answers) == {w.rid(1), w.rid(2), w.rid(3)}
        assert w.answers[w.rid(3)].status == "won" and w.answers[w.rid(3)].stage == "implementation"
        events = await logged(w)
        assert [e.seq for e in events] == list(range(1, len(events) + 1))
        assert shape(events, w.deal_id) == expected, w.deal_id
        for rid, answer in w.answers.items():
            assert [e.seq for e in events if e.request_id == rid] == list(range(answer.first_seq, answer.last_seq + 1))
        # Temporal's history agrees with the log
        recorded = deal_events(await fetch_deal(temporal_client, w.deal_id))
        state = fold(recorded)
        assert state.status == "won" and state.last_seq == len(events)
        assert set(state.requests) == set(w.answers)
        assert recorded == events
