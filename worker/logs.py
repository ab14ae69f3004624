"""Log lines as text or JSON (`DEALFLOW_LOG_FORMAT`), each naming the deal it concerns.

Temporal's workflow and activity loggers put the workflow's identity on their records
(`temporal_workflow`, `temporal_activity`); any other logger called while an activity runs (the
event log's, the channels') is inside the activity's context, which names its workflow. A filter
turns that workflow id into `deal_id` (a deal's own workflow or its follow-up cadence), and adds
the trace and span ids when tracing is on, so a line can be found from its trace and back.

JSON lines come from python-json-logger: `level`, `logger`, `message`, `deal_id`, `time` (ISO
8601, UTC), `trace_id` and `span_id` when tracing, and whatever Temporal put on the record
(`temporal_workflow`: workflow id, run id, type, task queue; `temporal_activity`: activity id
and type, attempt, workflow id).
"""

from __future__ import annotations

import logging
from typing import IO

import temporalio.workflow
from opentelemetry import trace
from pythonjsonlogger.json import JsonFormatter
from temporalio import activity

from domain.commands import workflow_id

DEAL_PREFIX = workflow_id("")
CADENCE_PREFIX = "cadence-"  # a cadence's workflow id: cadence-<deal id>/<cadence>#<run>
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s%(deal)s: %(message)s"
JSON_FIELDS = ("levelname", "name", "message", "deal_id")
JSON_NAMES = {"levelname": "level", "name": "logger"}


def deal_of(workflow: str | None) -> str | None:
    """The deal a workflow id belongs to: the deal's own workflow or one of its cadences."""
    if not workflow:
        return None
    if workflow.startswith(DEAL_PREFIX):
        return workflow.removeprefix(DEAL_PREFIX)
    if workflow.startswith(CADENCE_PREFIX) and "/" in workflow:
        return workflow.removeprefix(CADENCE_PREFIX).split("/", 1)[0]
    return None


def _workflow_of(record: logging.LogRecord) -> str | None:
    for attr in ("temporal_workflow", "temporal_activity"):
        details = getattr(record, attr, None)
        if isinstance(details, dict) and details.get("workflow_id"):
            return str(details["workflow_id"])
    if activity.in_activity():
        return activity.info().workflow_id
    return None


class DealContext(logging.Filter):
    """Adds `deal_id` (None outside any deal), `trace_id` and `span_id` (when a span is current)
    to every record; with `text`, also `deal`, the text format's ` deal=<id>` (or nothing)."""

    def __init__(self, *, text: bool) -> None:
        super().__init__()
        self._text = text

    def filter(self, record: logging.LogRecord) -> bool:
        deal = getattr(record, "deal_id", None) or deal_of(_workflow_of(record))
        record.deal_id = deal
        span = trace.get_current_span().get_span_context()
        if span.is_valid:
            record.trace_id = format(span.trace_id, "032x")
            record.span_id = format(span.span_id, "016x")
        if self._text:
            record.deal = f" deal={deal}" if deal else ""
        return True


def handler(fmt: str, stream: IO[str] | None = None) -> logging.Handler:
    """A handler writing `fmt` ("text" or "json") lines to `stream` (standard error)."""
    out = logging.StreamHandler(stream)
    out.addFilter(DealContext(text=fmt == "text"))
    if fmt == "json":
        out.setFormatter(JsonFormatter(list(JSON_FIELDS), rename_fields=JSON_NAMES, timestamp="time"))
    else:
        out.setFormatter(logging.Formatter(TEXT_FORMAT))
    return out


def configure(fmt: str, level: int) -> None:
    """The process's logging: one handler on the root logger.

    In JSON, Temporal's loggers leave their details off the message (they are fields already).
    """
    logging.basicConfig(level=level, handlers=[handler(fmt)], force=True)
    structured = fmt == "json"
    temporalio.workflow.logger.workflow_info_on_message = not structured
    activity.logger.activity_info_on_message = not structured
