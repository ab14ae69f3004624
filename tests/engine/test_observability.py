"""Observability: a real worker's /metrics, /livez and /readyz, a rep's action traced from the
client through the workflow to the append activity, and log lines that name their deal.

The workers here run on task queues of their own against the session's Temporal dev server and
PostgreSQL, through `worker.run.running_worker` (what `dealflow worker` runs), so every count
they report comes from the deals these tests drive.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import io
import json
import logging
import socket
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path

import asyncpg
import httpx
import pytest
from aiohttp import web
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client.parser import text_string_to_metric_families
from temporalio import activity
from temporalio.service import RPCError
from temporalio.testing import ActivityEnvironment, WorkflowEnvironment

from client.api import DealflowClient, Refused
from definitions.loader import PinnedDefinition, load_file
from domain.commands import workflow_id
from store import event_log, registry
from store.embedded import free_port
from tests.support import new_deal_id, wait_for
from worker import logs, tracing
from worker.connect import connect_temporal
from worker.endpoint import EndpointError, serving
from worker.run import run_worker, running_worker
from worker.settings import (
    EAGER_ACTIVITIES_ENV_VAR,
    LOG_FORMAT_ENV_VAR,
    METRICS_ENV_VAR,
    Settings,
    SettingsError,
    eager_activities,
    log_format,
    metrics_address,
)

# an hour's deadline on the first stage, every day a business day: at time_scale 1/3600 the
# deal breaches its SLA a second after it starts
DEFINITION = """
name: observed
title: Observed
business_days: [0, 1, 2, 3, 4, 5, 6]
phases:
  - {id: p, title: Only phase}
stages:
  - id: watch
    title: Watch
    phase: p
    probability: 0.2
    reminder: {deadline: 1 hour}
    exit_criteria:
      - {fact: need, type: text}
  - {id: close, title: Close, phase: p, probability: 0.8}
outcomes:
  won: {}
  lost: {reasons: [gave-up]}
"""
SECOND = 1 / 3600


@pytest.fixture(scope="module")
async def observed(pool: asyncpg.Pool, tmp_path_factory: pytest.TempPathFactory) -> PinnedDefinition:
    path = tmp_path_factory.mktemp("observed") / "observed.yaml"
    path.write_text(DEFINITION)
    pinned = load_file(path)
    await registry.deploy(pool, pinned, deployed_by="tests", source=str(path))
    return pinned


@pytest.fixture
def own_queue(settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The session's servers, a task queue of the test's own, appends as soon as events come."""
    monkeypatch.setenv("DEALFLOW_HOME", str(tmp_path / "home"))  # the outbox directory
    return replace(settings, task_queue=f"ops-{uuid.uuid4().hex[:8]}", log_flush_seconds=0)


@asynccontextmanager
async def served(settings: Settings, pool: asyncpg.Pool) -> AsyncIterator[httpx.AsyncClient]:
    """A worker with its endpoint on a free port, and an HTTP client for that endpoint."""
    port = free_port()
    async with (
        running_worker(settings, pool, endpoint=("127.0.0.1", port)),
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as http,
    ):
        yield http


Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def scrape(http: httpx.AsyncClient) -> Samples:
    response = await http.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }


def sample(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def named(samples: Samples, name: str) -> dict[frozenset[tuple[str, str]], float]:
    return {labels: value for (n, labels), value in samples.items() if n == name}


async def logged_through(pool: asyncpg.Pool, client: DealflowClient, deal_id: str) -> None:
    """Every event the deal's workflow recorded is in the log."""

    async def complete() -> bool:
        state = (await client.status(deal_id)).state
        return await event_log.count(pool, deal_id) == state.last_seq

    await wait_for(complete)


async def test_a_running_worker_reports_what_it_did(
    temporal_env: WorkflowEnvironment, pool: asyncpg.Pool, observed: PinnedDefinition, own_queue: Settings
) -> None:
    lines = io.StringIO()
    handler = logs.handler("json", lines)
    root = logging.getLogger()
    root.addHandler(handler)
    level = root.level
    root.setLevel(logging.INFO)
    client = DealflowClient(temporal_env.client, pool, own_queue)
    try:
        async with served(own_queue, pool) as http:
            assert (await http.get("/livez")).text == "ok\n"

            async def ready() -> bool:
                return (await http.get("/readyz")).status_code == 200

            await wait_for(ready)
            body = (await http.get("/readyz")).text
            assert "ok postgresql: answers" in body and f"polls task queue {own_queue.task_queue!r}" in body

            breached = new_deal_id("obs")  # breaches its SLA, then is won
            waiting = new_deal_id("obs")  # refused once, then waits at close
            await client.start_deal("observed", breached, "olga", time_scale=SECOND)
            await client.start_deal("observed", waiting, "olga")
            with pytest.raises(Refused) as refused:
                await client.complete_stage(waiting, "watch", actor="olga")
            assert refused.value.code == "missing_facts"
            await client.complete_stage(waiting, "watch", actor="olga", facts={"need": "a CRM"})

            async def reminded() -> bool:
                return "ReminderSent" in {e.type for e in await event_log.read(pool, breached)}

            await wait_for(reminded)
            await client.complete_stage(breached, "watch", actor="olga", facts={"need": "a CRM"})
            await client.win(breached, actor="olga")
            for deal in (breached, waiting):
                await logged_through(pool, client, deal)
            samples = await scrape(http)
            unsent = {
                r["status"]: r["n"]
                for r in await pool.fetch(
                    "SELECT status, count(*) AS n FROM outbox WHERE status <> 'sent' GROUP BY status"
                )
            }
    finally:
        root.removeHandler(handler)
        root.setLevel(level)

    # every event these deals logged, counted once, by type
    events = [*await event_log.read(pool, breached), *await event_log.read(pool, waiting)]
    logged = Counter(e.type for e in events)
    appended = {
        dict(labels)["type"]: value for labels, value in named(samples, "dealflow_events_appended_total").items()
    }
    assert appended == logged
    assert (logged["DealStarted"], logged["SlaBreached"], logged["DealWon"]) == (2, 1, 1)
    assert named(samples, "dealflow_sla_breaches_total") == {
        frozenset({("process", "observed"), ("stage", "watch")}): 1
    }
    assert named(samples, "dealflow_refusals_total") == {
        frozenset({("action", "complete_stage"), ("code", "missing_facts")}): 1
    }
    assert named(samples, "dealflow_event_append_failures_total") == {}
    assert sample(samples, "dealflow_event_append_retries_total") == 0
    # read from the projection at the scrape: the won deal is no longer open
    observed_open = {
        dict(labels)["stage"]: v
        for labels, v in named(samples, "dealflow_deals_open").items()
        if ("process", "observed") in labels
    }
    assert observed_open == {"close": 1}
    for status in ("pending", "retrying", "failed"):
        assert sample(samples, "dealflow_outbox_unsent", status=status) == unsent.get(status, 0)
    # the Temporal SDK's own, from its exporter, on the same page
    names = {name for name, _ in samples}
    assert {
        "temporal_workflow_task_execution_latency_count",
        "temporal_activity_execution_latency_count",
        "temporal_worker_task_slots_available",
        "temporal_sticky_cache_size",
        "temporal_num_pollers",
    } <= names
    assert "process_resident_memory_bytes" in names

    # the reminder's notification was sent by an activity, whose log line names the deal
    records = [json.loads(line) for line in lines.getvalue().splitlines()]
    sent = [r for r in records if r["logger"] == "temporalio.activity" and r["message"].startswith(f"sent {breached}/")]
    assert sent and all(r["deal_id"] == breached for r in sent)
    assert sent[0]["temporal_activity"]["activity_type"] == "send_message"
    assert {"time", "level", "logger", "message"} <= set(sent[0])


async def test_readiness_fails_with_the_reason_when_postgresql_is_unreachable(
    temporal_env: WorkflowEnvironment, pool: asyncpg.Pool, observed: PinnedDefinition, own_queue: Settings
) -> None:
    closed = await asyncpg.create_pool(f"postgresql://postgres@127.0.0.1:{free_port()}/dealflow", min_size=0)
    deal = new_deal_id("obs")
    try:
        async with served(own_queue, closed) as http:
            assert (await http.get("/livez")).status_code == 200

            async def polling() -> bool:
                return "ok temporal" in (await http.get("/readyz")).text

            await wait_for(polling)
            response = await http.get("/readyz")
            assert response.status_code == 503
            assert "fail postgresql: cannot query: ConnectionRefusedError" in response.text

            # the deal's appends fail, and Temporal retries them: both are counted
            await DealflowClient(temporal_env.client, pool, own_queue).start_deal("observed", deal, "olga")

            async def retried() -> bool:
                return bool(sample(await scrape(http), "dealflow_event_append_retries_total"))

            await wait_for(retried)
            samples = await scrape(http)
            failures = sample(samples, "dealflow_event_append_failures_total", error="ConnectionRefusedError")
            retries = sample(samples, "dealflow_event_append_retries_total")
            # each attempt after the first is a retry; each failed attempt a failure (the last
            # retry may still be under way)
            assert failures is not None and retries is not None and failures - retries in (0, 1)
            assert named(samples, "dealflow_events_appended_total") == {}
            # what PostgreSQL would tell is left out rather than reported wrong
            assert named(samples, "dealflow_deals_open") == {}
    finally:
        with contextlib.suppress(RPCError):  # (not started, if the test failed before)
            await temporal_env.client.get_workflow_handle(workflow_id(deal)).terminate("test over")
        await closed.close()


async def test_a_rep_action_is_traced_from_the_client_to_the_append(
    pool: asyncpg.Pool, observed: PinnedDefinition, own_queue: Settings
) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.use(provider)
    deal = new_deal_id("obs")
    try:
        client = DealflowClient(await connect_temporal(own_queue), pool, own_queue)
        async with running_worker(own_queue, pool):
            with provider.get_tracer("tests").start_as_current_span("rep at work") as session:
                await client.start_deal("observed", deal, "olga")
                done = await client.complete_stage(deal, "watch", actor="olga", facts={"need": "a CRM"})

            def appended() -> list[ReadableSpan]:
                return [s for s in exporter.get_finished_spans() if s.name == "RunActivity:append_events"]

            async def appended_through_completion() -> bool:
                return await event_log.count(pool, deal) >= done.last_seq and len(appended()) >= 1

            await wait_for(appended_through_completion)
            await client.lose(deal, "gave-up", actor="olga")
    finally:
        tracing.use(None)

    spans = exporter.get_finished_spans()
    trace_id = session.get_span_context().trace_id

    def one(name: str) -> ReadableSpan:
        found = [s for s in spans if s.name == name and s.context.trace_id == trace_id]
        assert len(found) == 1, f"{name}: {[s.name for s in spans]}"
        return found[0]

    update = one("StartWorkflowUpdate:complete_stage")  # the client's call
    handler = one("HandleUpdate:complete_stage")  # the workflow's handler, in the deal's trace
    start = one("StartWorkflow:Deal")
    assert update.parent is not None and update.parent.span_id == session.get_span_context().span_id
    assert [link.context.span_id for link in handler.links] == [update.context.span_id]
    assert handler.attributes is not None and handler.attributes["temporalWorkflowID"] == workflow_id(deal)
    # the append the completion led to: scheduled by the workflow, run by the activity worker
    runs = [s for s in spans if s.name == "RunActivity:append_events" and s.context.trace_id == trace_id]
    scheduled = {s.context.span_id for s in spans if s.name == "StartActivity:append_events"}
    assert runs and all(r.parent is not None and r.parent.span_id in scheduled for r in runs)
    assert start.context.trace_id == trace_id


@pytest.mark.unit
def test_log_lines_name_their_deal() -> None:
    out = {fmt: io.StringIO() for fmt in ("json", "text")}
    handlers = [logs.handler(fmt, stream) for fmt, stream in out.items()]
    source = logging.getLogger("tests.observability")
    source.setLevel(logging.INFO)
    for h in handlers:
        source.addHandler(h)
    env = ActivityEnvironment()
    env.info = dataclasses.replace(env.info, workflow_id=workflow_id("acme-1"), activity_type="append_events")

    def in_activity() -> None:
        activity.LoggerAdapter(source, None).info("appended")  # as activity.logger does
        source.warning("a plain logger inside the activity")

    try:
        env.run(in_activity)
        source.info("in a cadence", extra={"temporal_workflow": {"workflow_id": "cadence-acme-1/seven#2"}})
        source.info("worker started")
    finally:
        for h in handlers:
            source.removeHandler(h)
    records = [json.loads(line) for line in out["json"].getvalue().splitlines()]
    assert [r["deal_id"] for r in records] == ["acme-1", "acme-1", "acme-1", None]
    assert records[0]["temporal_activity"]["workflow_id"] == "deal-acme-1"
    assert (records[0]["level"], records[0]["logger"]) == ("INFO", "tests.observability")
    text = out["text"].getvalue().splitlines()
    assert " INFO tests.observability deal=acme-1: appended (" in text[0]
    assert text[3].endswith(" INFO tests.observability: worker started")
    assert logs.deal_of("deal-x.y:z") == "x.y:z" and logs.deal_of("other") is None


async def test_a_taken_port_is_named() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(EndpointError, match=rf"{METRICS_ENV_VAR}=127.0.0.1:{port}: cannot listen there"):
            async with serving(("127.0.0.1", port), web.Application()):
                pass


@pytest.mark.unit
def test_endpoint_and_log_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(METRICS_ENV_VAR, raising=False)
    assert metrics_address("0.0.0.0:9464") == ("0.0.0.0", 9464)
    for raw, expected in (("127.0.0.1:0", ("127.0.0.1", 0)), ("[::]:9100", ("::", 9100)), ("off", None)):
        monkeypatch.setenv(METRICS_ENV_VAR, raw)
        assert metrics_address("0.0.0.0:9464") == expected
    for bad in ("9464", "host:", "host:http", "host:70000"):
        monkeypatch.setenv(METRICS_ENV_VAR, bad)
        with pytest.raises(SettingsError, match=METRICS_ENV_VAR):
            metrics_address("0.0.0.0:9464")
    monkeypatch.delenv(LOG_FORMAT_ENV_VAR, raising=False)
    assert log_format() == "text"
    monkeypatch.setenv(LOG_FORMAT_ENV_VAR, "JSON")
    assert log_format() == "json"
    monkeypatch.setenv(LOG_FORMAT_ENV_VAR, "xml")
    with pytest.raises(SettingsError, match=LOG_FORMAT_ENV_VAR):
        log_format()
    monkeypatch.delenv(EAGER_ACTIVITIES_ENV_VAR, raising=False)
    assert eager_activities() is True
    monkeypatch.setenv(EAGER_ACTIVITIES_ENV_VAR, "off")
    assert eager_activities() is False
    monkeypatch.setenv(EAGER_ACTIVITIES_ENV_VAR, "sometimes")
    with pytest.raises(SettingsError, match=rf"{EAGER_ACTIVITIES_ENV_VAR}='sometimes': use true or false"):
        eager_activities()


@pytest.mark.unit
async def test_bad_eager_setting_named_before_anything_connects(monkeypatch: pytest.MonkeyPatch) -> None:
    # nothing listens on port 9 (discard): a worker that connected first would fail on that instead
    nowhere = Settings(temporal_address="127.0.0.1:9", database_url="postgresql://nobody@127.0.0.1:9/none")
    monkeypatch.setenv(EAGER_ACTIVITIES_ENV_VAR, "sometimes")
    with pytest.raises(SettingsError, match=rf"{EAGER_ACTIVITIES_ENV_VAR}='sometimes': use true or false"):
        await run_worker(nowhere, asyncio.Event())
