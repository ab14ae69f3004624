"""OpenTelemetry tracing across the client, the deal workflows and their activities.

On when the standard `OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is
set and `OTEL_SDK_DISABLED` is not: spans go in batches over OTLP/HTTP (the exporter reads the
other standard `OTEL_EXPORTER_OTLP_*` variables itself), and every Temporal client made by
`worker.connect` carries Temporal's `TracingInterceptor`, which a worker built on that client
inherits. Off otherwise: no interceptor and no provider, so tracing costs nothing.

The interceptor puts the client's calls (start, update, query), the workflow's handlers and the
activities in the deal's trace: the trace of the call that started the deal. Each workflow span
(`RunWorkflow`, `HandleUpdate:...`, `StartActivity:...`) is a point in time, as the interceptor
makes them replay-safe; a handler span links to the rep's `StartWorkflowUpdate` span, which lives
in the trace of the rep's own call.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from temporalio.client import Interceptor

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider

ENDPOINT_ENV_VARS = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
# how long a command waits, at exit, for its last spans to be exported
FLUSH_MILLIS = 5000

_provider: TracerProvider | None = None


def requested() -> bool:
    """The environment asks for spans to be exported."""
    if os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    return any(os.environ.get(var, "").strip() for var in ENDPOINT_ENV_VARS)


def configure(service_name: str) -> None:
    """Set up the OTLP exporter, once per process, when the environment asks for it.

    `OTEL_SERVICE_NAME` overrides `service_name` ("dealflow-worker" for a worker, "dealflow" for
    the CLI and the Python client).
    """
    global _provider
    if _provider is not None or not requested():
        return
    from opentelemetry import trace
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    name = os.environ.get("OTEL_SERVICE_NAME") or service_name
    provider = TracerProvider(resource=Resource.create({SERVICE_NAME: name}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    _provider = provider


def use(provider: TracerProvider | None) -> None:
    """Trace with `provider` (an in-memory exporter in tests), or stop tracing (None)."""
    global _provider
    _provider = provider


def interceptors() -> list[Interceptor]:
    """What a Temporal client (and every worker built on it) is given: the tracing interceptor
    when tracing is on, nothing otherwise."""
    configure("dealflow")
    if _provider is None:
        return []
    from temporalio.contrib.opentelemetry import TracingInterceptor

    return [TracingInterceptor(_provider.get_tracer("dealflow"))]


def flush() -> None:
    """Export the spans still buffered (a command ends with os._exit, which runs no atexit)."""
    if _provider is not None:
        _provider.force_flush(FLUSH_MILLIS)
