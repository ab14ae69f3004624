"""/api/v1/metrics and /api/v1/audit: what managers and auditors read."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import Response
from pydantic import BaseModel, Field

from analytics.version_comparison import Comparison
from app import audit_service, metrics_service
from app.metrics_service import ExperimentComparison, MetricsQuery
from client.api import Refused
from domain.state import DealState
from web.dependencies import Client, Who
from web.errors import RESPONSES
from web.schemas import CustomerSummary, Metrics, ProcessMetrics, Refusal, public

router = APIRouter(responses=RESPONSES)


class TimelineEntry(BaseModel):
    at: datetime
    kind: str
    what: str
    actor: str
    request_id: str | None
    stage: str | None
    seq: int | None
    details: dict[str, Any]


class VerifyFinding(BaseModel):
    code: str = Field(description="stable: missing_from_log, differs, not_in_history, hash_mismatch, ...")
    message: str
    seqs: list[int]


class VerifyResult(BaseModel):
    deal_id: str
    ok: bool
    log_events: int
    history_events: int
    problems: list[str]
    findings: list[VerifyFinding] = []
    notes: list[str] = []


def _ref(text: str, name: str) -> tuple[str, str]:
    process, _, version = text.partition("@")
    if not process or not version:
        raise Refused(f"{name}: expected PROCESS@VERSION, got {text!r}", code="invalid_request")
    return process, version


@router.get("/metrics", response_model=list[ProcessMetrics], tags=["metrics"], name="by_process")
async def metrics(
    c: Client,
    caller: Who,
    process: str | None = None,
    version: str | None = None,
    owner: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    as_of: datetime | None = None,
    experiment: str | None = None,
) -> list[ProcessMetrics]:
    """Stage, phase and deal-set figures per process (every process when none is named)."""
    query = MetricsQuery(
        process=process, version=version, owner=owner, since=since, until=until, as_of=as_of, experiment=experiment
    )
    found = await metrics_service.metrics(c, query)
    return [ProcessMetrics(process=p.name, version=m.filters.version, metrics=public(Metrics, m)) for p, m in found]


@router.get("/metrics/compare", response_model=Comparison | ExperimentComparison, tags=["metrics"])
async def compare(
    c: Client,
    caller: Who,
    a: Annotated[str | None, Query(description="PROCESS@VERSION")] = None,
    b: Annotated[str | None, Query(description="PROCESS@VERSION")] = None,
    experiment: str | None = None,
) -> Comparison | ExperimentComparison:
    """Two versions side by side, or an experiment's arms, with significance tests and verdicts."""
    if experiment and (a or b):
        raise Refused("give either a and b, or experiment, not both", code="invalid_request")
    if experiment:
        return await metrics_service.compare_experiment(c, experiment)
    if not (a and b):
        raise Refused("compare needs a=PROCESS@V1 and b=PROCESS@V2, or experiment=NAME", code="invalid_request")
    return await metrics_service.compare_versions(c, _ref(a, "a"), _ref(b, "b"))


@router.get("/metrics/customers", response_model=list[CustomerSummary], tags=["metrics"])
async def customers(c: Client, caller: Who, process: str | None = None) -> list[CustomerSummary]:
    return [public(CustomerSummary, s) for s in await metrics_service.customers_of(c, process)]


@router.get("/audit/deals/{deal_id}/timeline", response_model=list[TimelineEntry], tags=["audit"])
async def timeline(deal_id: str, c: Client, caller: Who) -> list[TimelineEntry]:
    """Who did what and when, from Temporal's history of the deal."""
    return [TimelineEntry(**e.as_dict()) for e in await audit_service.deal_timeline(c, deal_id)]


@router.get("/audit/deals/{deal_id}/as-of", response_model=DealState, tags=["audit"])
async def as_of(deal_id: str, at: datetime, c: Client, caller: Who) -> DealState:
    if at.tzinfo is None:
        raise Refused(f"at={at.isoformat()} has no time zone: add Z or +01:00", code="invalid_request")
    return await audit_service.state_as_of(c, deal_id, at)


@router.get("/audit/deals/{deal_id}/verify", response_model=VerifyResult, tags=["audit"])
async def verify(deal_id: str, c: Client, caller: Who) -> VerifyResult:
    """The log against Temporal's history, and the log's hash chain."""
    v = await audit_service.verify_running(c, deal_id)
    return VerifyResult(
        deal_id=v.deal_id,
        ok=v.ok,
        log_events=v.log_events,
        history_events=v.history_events,
        problems=v.problems,
        findings=[VerifyFinding(**f.as_dict()) for f in v.findings],
        notes=v.notes,
    )


@router.get("/audit/deals/{deal_id}/export", tags=["audit"], response_class=Response)
async def export(deal_id: str, c: Client, caller: Who) -> Response:
    """A self-contained bundle (JSON) for `dealflow audit replay|verify --from-json`."""
    bundle = await audit_service.export(c, deal_id)
    return Response(
        json.dumps(bundle, indent=1, sort_keys=True),
        media_type="application/json",
        headers={"Content-Disposition": f'attachment; filename="deal-{_safe(deal_id)}-audit.json"'},
    )


@router.get("/audit/refusals", response_model=list[Refusal], tags=["audit"])
async def refusals(
    c: Client, caller: Who, since: datetime | None = None, limit: Annotated[int, Query(ge=1, le=10000)] = 1000
) -> list[Refusal]:
    """Requests refused for want of a permission, newest first."""
    return [public(Refusal, r) for r in await audit_service.refusals(c, since=since, limit=limit)]


def _safe(text: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in text)
