"""What a manager's dashboard reads in one request: the metrics of each process the filters cover,
the same figures for each deployed version of a chosen process, two of its versions compared, and
each of its experiments compared arm by arm.

Every figure comes from `metrics_service`, as the CLI's and the API's do; this module only says
which of them a dashboard puts side by side, so that the page asks one question and the rules of
what may be compared (a version belongs to one process; two different versions) live here.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel

from analytics.version_comparison import Comparison
from app import experiment_service, metrics_service
from app.context import Context
from app.errors import Refused
from app.metrics_service import ExperimentComparison, MetricsQuery
from store import registry
from store.metrics import Metrics


class VersionFigures(BaseModel):
    version: str
    deployed_at: datetime
    metrics: Metrics


class ProcessFigures(BaseModel):
    process: str
    title: str
    version: str  # the version whose stages the figures follow: the one asked for, else the latest
    metrics: Metrics
    by_version: list[VersionFigures]  # filled only when the query names the process
    version_stages: list[str]  # every stage of the versions in by_version, the latest's order first


class Dashboard(BaseModel):
    query: MetricsQuery
    processes: list[ProcessFigures]
    comparison: Comparison | None
    experiments: list[ExperimentComparison]


async def by_version(c: Context, query: MetricsQuery) -> list[VersionFigures]:
    """The query's figures on each deployed version of its process, oldest first; a version no deal
    of the query started on or migrated to is left out (it would be a row of zeros)."""
    if not query.process:
        raise Refused("figures by version need a process", code="invalid_request")
    out = []
    for d in await registry.list_all(c.pool):
        if d.name != query.process:
            continue
        [(_, m)] = await metrics_service.metrics(c, query.model_copy(update={"version": d.version}))
        if m.deals.deals:
            out.append(VersionFigures(version=d.version, deployed_at=d.deployed_at, metrics=m))
    return out


def _stages_of(latest: Metrics, versions: list[VersionFigures]) -> list[str]:
    """The latest's stages in order, each stage only an older version has placed after the stage
    before it in that version, so that a table of versions reads down the process."""
    stages = [s.stage for s in latest.stages]
    for v in reversed(versions):
        at = 0
        for s in v.metrics.stages:
            if s.stage in stages:
                at = stages.index(s.stage) + 1
            else:
                stages.insert(at, s.stage)
                at += 1
    return stages


async def dashboard(c: Context, query: MetricsQuery, compare: tuple[str, str] | None = None) -> Dashboard:
    """Per process the query covers, its figures and its experiments compared; with a process
    named, also its figures by version and two of its versions compared (`compare`). Figures by
    version wait for a process to be named: they cost one computation per version deployed."""
    if compare and not query.process:
        raise Refused(
            "comparing two versions needs a process: a version belongs to one process", code="invalid_request"
        )
    if compare and compare[0] == compare[1]:
        raise Refused(f"pick two different versions to compare, not {compare[0]} twice", code="invalid_request")
    processes = []
    for pinned, m in await metrics_service.metrics(c, query):
        versions = await by_version(c, query.model_copy(update={"process": pinned.name})) if query.process else []
        processes.append(
            ProcessFigures(
                process=pinned.name,
                title=pinned.definition.title or pinned.name,
                version=pinned.version,
                metrics=m,
                by_version=versions,
                version_stages=_stages_of(m, versions),
            )
        )
    comparison = None
    if compare and query.process:
        comparison = await metrics_service.compare_versions(c, (query.process, compare[0]), (query.process, compare[1]))
    shown = {p.process for p in processes}
    experiments = [
        await metrics_service.compare_experiment(c, e.experiment)
        for e in await experiment_service.list_all(c)
        if e.process in shown
    ]
    return Dashboard(query=query, processes=processes, comparison=comparison, experiments=experiments)
