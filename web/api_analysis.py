"""/api/v1/metrics/reps, /metrics/by-fact, /metrics/persistence, /metrics/handoffs: the insights a
manager reads, the same answers as `dealflow metrics reps|by-fact|persistence|handoffs --json`
(docs/metrics.md)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query

from analytics.handoff_verdicts import HandoffMetrics
from app import handoff_service, insights_service
from app.insights_service import MAX_BUCKETS, InsightQuery
from store.fact_outcomes import FactOutcomes
from store.follow_up_persistence import Persistence
from store.rep_strength import RepStrength
from web.dependencies import Client, Who
from web.errors import RESPONSES

router = APIRouter(responses=RESPONSES)


@router.get("/metrics/reps", response_model=RepStrength, tags=["metrics"])
async def reps(
    c: Client,
    caller: Who,
    process: str,
    version: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    as_of: datetime | None = None,
) -> RepStrength:
    """Phase strength per rep: each rep's conversion out of each phase against the rest of the
    team, with Holm-adjusted p-values and verdicts."""
    query = InsightQuery(process=process, version=version, since=since, until=until, as_of=as_of)
    return await insights_service.reps(c, query)


@router.get("/metrics/by-fact", response_model=FactOutcomes, tags=["metrics"])
async def by_fact(
    c: Client,
    caller: Who,
    process: str,
    fact: Annotated[str, Query(description="STAGE.FACT, e.g. closing.close_technique")],
    buckets: Annotated[int, Query(ge=2, le=MAX_BUCKETS, description="number facts: how many buckets")] = 4,
) -> FactOutcomes:
    """Which value of a stage's choice, boolean or number fact wins: conversion and win rate per
    value, with significance and verdicts."""
    return await insights_service.by_fact(c, InsightQuery(process=process), fact, buckets=buckets)


@router.get("/metrics/persistence", response_model=Persistence, tags=["metrics"])
async def persistence(c: Client, caller: Who, process: str, by_rep: bool = False) -> Persistence:
    """Touches sent before a reply, a win or a loss, and the deals giving up early would have lost."""
    return await insights_service.follow_up(c, InsightQuery(process=process), by_rep=by_rep)


@router.get("/metrics/handoffs", response_model=HandoffMetrics, tags=["metrics"])
async def handoffs(c: Client, caller: Who, process: str | None = None) -> HandoffMetrics:
    """Time lost at handoffs between teams: from each HandedOff to the new owner's first action,
    per process, team and stage, with the stages whose handoffs are slow."""
    return await handoff_service.handoff_metrics(c, process)
