"""The worker's metrics: dealflow's own (prometheus_client) and the Temporal SDK's.

dealflow's own live in a registry of the worker's:

- counted by an interceptor as the worker does its work: events appended to the log (by type,
  as many as the append reports new), SLA breaches among them (by process and stage), failed
  append attempts (by error) and retried ones, and refusals of rep requests (by action and
  code), counted where the deal's update validator (or, after a race, its handler) refuses;
- read from PostgreSQL at each scrape: open deals by process and stage (the `deals`
  projection), outbox messages not sent (by status) with the age of the oldest, and deals whose
  appends to the log keep failing (store.log_failures) with how long the oldest has.

The SDK's runtime metrics (task latencies, slots, pollers, sticky cache, requests) come from
its own Prometheus exporter (`PrometheusConfig`), bound to a loopback port of its own; the
worker's endpoint (worker.endpoint) serves both under one `/metrics`, so Prometheus scrapes one
target and the SDK's metrics keep the names Temporal documents.

Workflow code stays deterministic: nothing here runs in `workflows/`. The refusal count is
taken by a workflow interceptor through an extern function (as Temporal's tracing interceptor
makes its spans): a validator runs only for a live request, never on replay, and a handler's
refusal is counted only when it is not being replayed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Sequence
from typing import Any

import asyncpg
from prometheus_client import (
    CollectorRegistry,
    Counter,
    GCCollector,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
)
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from temporalio import activity, workflow
from temporalio.exceptions import ApplicationError
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig
from temporalio.worker import (
    ActivityInboundInterceptor,
    ExecuteActivityInput,
    HandleUpdateInput,
    Interceptor,
    WorkflowInboundInterceptor,
    WorkflowInterceptorClassInput,
)

from domain.activity_io import APPEND_EVENTS, AppendEvents, AppendReceipt
from domain.events import SlaBreached
from store import log_failures
from store.db import DATABASE_ERRORS
from store.embedded import free_port

log = logging.getLogger("dealflow.telemetry")

REFUSED = "__dealflow_refused"
# a scrape waits this long for PostgreSQL before leaving the projection's gauges out
STORE_TIMEOUT = 2.0
UNREADABLE: tuple[type[Exception], ...] = (*DATABASE_ERRORS, TimeoutError)

_OPEN_DEALS = "SELECT process, stage, count(*) AS n FROM deals WHERE status = 'open' GROUP BY process, stage"
# the outbox's rows are written in the sending transaction; what other sessions can see unsent
# is a message whose last attempt failed: 'retrying' (Temporal retries it) or 'failed' (given up)
_OUTBOX = (
    "SELECT status, count(*) AS n, extract(epoch FROM now() - min(created_at))::float8 AS oldest"
    " FROM outbox WHERE status <> 'sent' GROUP BY status"
)


class StoreGauges(Collector):
    """Gauges read from PostgreSQL: `refresh()` before each scrape, `collect()` in it."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool
        self._open: list[asyncpg.Record] | None = None
        self._outbox: list[asyncpg.Record] | None = None
        self._failing: tuple[int, float] | None = None

    async def refresh(self) -> None:
        try:
            async with asyncio.timeout(STORE_TIMEOUT):
                self._open = await self._pool.fetch(_OPEN_DEALS)
                self._outbox = await self._pool.fetch(_OUTBOX)
                self._failing = await log_failures.count(self._pool)
        except UNREADABLE as exc:
            log.warning("metrics: cannot read deals and outbox from PostgreSQL: %s", exc)
            self._open = self._outbox = self._failing = None

    def describe(self) -> Iterable[Metric]:
        return self._families(None, None, None)

    def collect(self) -> Iterable[Metric]:
        return self._families(self._open, self._outbox, self._failing)

    @staticmethod
    def _families(
        open_deals: Sequence[asyncpg.Record] | None,
        outbox: Sequence[asyncpg.Record] | None,
        failing: tuple[int, float] | None,
    ) -> list[Metric]:
        deals = GaugeMetricFamily(
            "dealflow_deals_open",
            "Open deals by process and current stage (the deals projection)",
            labels=["process", "stage"],
        )
        unsent = GaugeMetricFamily(
            "dealflow_outbox_unsent",
            "Outbox messages not sent, by status: retrying (a transient failure) or failed (permanent)",
            labels=["status"],
        )
        oldest = GaugeMetricFamily("dealflow_outbox_oldest_unsent_seconds", "Age of the oldest unsent outbox message")
        for row in open_deals or []:
            deals.add_metric([row["process"], row["stage"] or ""], row["n"])
        if outbox is not None:
            for status in ("pending", "retrying", "failed"):
                unsent.add_metric([status], sum(r["n"] for r in outbox if r["status"] == status))
            oldest.add_metric([], max((r["oldest"] for r in outbox), default=0.0))
        behind = GaugeMetricFamily(
            "dealflow_log_appends_failing",
            "Deals whose log lacks events because their append keeps failing (store.log_failures)",
        )
        behind_for = GaugeMetricFamily(
            "dealflow_log_appends_failing_oldest_seconds", "How long the longest-failing append has been failing"
        )
        if failing is not None:
            behind.add_metric([], failing[0])
            behind_for.add_metric([], failing[1])
        return [deals, unsent, oldest, behind, behind_for]


class DealflowMetrics:
    """dealflow's own metrics, in a registry of their own (one per worker)."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        disable_created_metrics()  # type: ignore[no-untyped-call]  # no `_created` series: half the lines
        self.registry = CollectorRegistry()
        for collector in (ProcessCollector, PlatformCollector, GCCollector):
            collector(registry=self.registry)
        self.events_appended = Counter(
            "dealflow_events_appended", "Events appended to the event log, by type", ["type"], registry=self.registry
        )
        self.sla_breaches = Counter(
            "dealflow_sla_breaches",
            "SlaBreached events appended to the log, by process and stage",
            ["process", "stage"],
            registry=self.registry,
        )
        self.append_failures = Counter(
            "dealflow_event_append_failures",
            "Attempts to append to the event log that failed (Temporal retries them), by error",
            ["error"],
            registry=self.registry,
        )
        self.append_retries = Counter(
            "dealflow_event_append_retries",
            "Attempts to append to the event log after a failed one",
            registry=self.registry,
        )
        self.refusals = Counter(
            "dealflow_refusals",
            "Rep requests the deal refused, by action and code",
            ["action", "code"],
            registry=self.registry,
        )
        self.store = StoreGauges(pool)
        self.registry.register(self.store)

    def appended(self, batch: AppendEvents, new: int) -> None:
        """Count the events an append wrote: `new` of them, the batch's last (an append writes
        what the log lacks after the events it has, which are the batch's first)."""
        if new <= 0:
            return
        for event in sorted(batch.events, key=lambda e: e.seq)[-new:]:
            self.events_appended.labels(event.type).inc()
            if isinstance(event, SlaBreached):
                self.sla_breaches.labels(batch.snapshot.process, event.stage or "").inc()

    def refused(self, action: str, code: str) -> None:
        self.refusals.labels(action, code).inc()


class MetricsInterceptor(Interceptor):
    """Counts appends (activities) and refusals (workflow update validators and handlers)."""

    def __init__(self, metrics: DealflowMetrics) -> None:
        self._metrics = metrics

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _AppendCounter(next, self._metrics)

    def workflow_interceptor_class(self, input: WorkflowInterceptorClassInput) -> type[WorkflowInboundInterceptor]:
        input.unsafe_extern_functions[REFUSED] = self._metrics.refused
        return _RefusalCounter


class _AppendCounter(ActivityInboundInterceptor):
    def __init__(self, next: ActivityInboundInterceptor, metrics: DealflowMetrics) -> None:
        super().__init__(next)
        self._metrics = metrics

    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        info = activity.info()
        if info.activity_type != APPEND_EVENTS:
            return await super().execute_activity(input)
        if info.attempt > 1:
            self._metrics.append_retries.inc()
        try:
            receipt = await super().execute_activity(input)
        except Exception as exc:
            self._metrics.append_failures.labels(type(exc).__name__).inc()
            raise
        batch = input.args[0] if input.args else None
        if isinstance(batch, AppendEvents) and isinstance(receipt, AppendReceipt):
            self._metrics.appended(batch, receipt.new)
        return receipt


class _RefusalCounter(WorkflowInboundInterceptor):
    def handle_update_validator(self, input: HandleUpdateInput) -> None:
        try:
            super().handle_update_validator(input)
        except ApplicationError as exc:
            self._count(input.update, exc)
            raise

    async def handle_update_handler(self, input: HandleUpdateInput) -> Any:
        try:
            return await super().handle_update_handler(input)
        except ApplicationError as exc:
            if not workflow.unsafe.is_replaying():
                self._count(input.update, exc)
            raise

    @staticmethod
    def _count(update: str, exc: ApplicationError) -> None:
        workflow.extern_functions()[REFUSED](update, exc.type or "refused")


class Telemetry:
    """A worker's metrics: the SDK runtime exporting to a loopback port, and dealflow's own."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.runtime, port = _sdk_runtime()
        self.sdk_metrics_url = f"http://127.0.0.1:{port}/metrics"
        self.metrics = DealflowMetrics(pool)
        self.interceptors: list[Interceptor] = [MetricsInterceptor(self.metrics)]


def _sdk_runtime(tries: int = 3) -> tuple[Runtime, int]:
    """A runtime whose Prometheus exporter listens on a free loopback port. The port is free
    when chosen; should another process take it before the exporter binds it, another is tried."""
    for attempt in range(tries):
        port = free_port()
        try:
            return Runtime(telemetry=TelemetryConfig(metrics=PrometheusConfig(bind_address=f"127.0.0.1:{port}"))), port
        except ValueError:  # "Failed starting Prometheus exporter: Address already in use"
            if attempt == tries - 1:
                raise
    raise AssertionError("unreachable")
