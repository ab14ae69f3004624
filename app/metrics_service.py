"""The metrics a manager reads: per process, compared between versions or an experiment's arms,
and per customer. The CLI, the report and the web dashboard all ask here."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel

from analytics.version_comparison import Comparison
from app import experiment_service
from app.context import Context
from app.errors import Refused
from definitions.loader import PinnedDefinition
from store import registry
from store.compare import compare
from store.deals import CustomerSummary, customers
from store.metrics import Filters, Metrics, compute


class MetricsQuery(BaseModel):
    """Which deals the figures cover; every field is optional."""

    process: str | None = None
    version: str | None = None
    owner: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    as_of: datetime | None = None
    experiment: str | None = None

    def problem(self) -> str | None:
        """Why the query cannot be answered as asked, in words; None when it can."""
        if self.version and not self.process:
            return "a version needs a process: a version belongs to one process"
        if self.since and self.until and self.since >= self.until:
            return f"since {self.since.isoformat()} is not before until {self.until.isoformat()}"
        return None


class ExperimentComparison(BaseModel):
    experiment: str
    comparisons: list[Comparison]


async def metrics(c: Context, query: MetricsQuery) -> list[tuple[PinnedDefinition, Metrics]]:
    """The figures of each process the query names (every deployed process when it names none)."""
    problem = query.problem()
    if problem:
        raise Refused(problem, code="invalid_request")
    names = [query.process] if query.process else sorted({d.name for d in await registry.list_all(c.pool)})
    out = []
    for name in names:
        pinned = await c.definition(name, query.version)
        filters = Filters(**(query.model_dump() | {"process": name}))
        out.append((pinned, await compute(c.pool, pinned.definition, filters)))
    return out


async def compare_versions(c: Context, a: tuple[str, str | None], b: tuple[str, str | None]) -> Comparison:
    return await compare(c.pool, await c.definition(*a), await c.definition(*b))


async def compare_experiment(c: Context, name: str) -> ExperimentComparison:
    """Every arm against the first (the baseline), on the deals the experiment assigned."""
    exp = (await experiment_service.get(c, name)).experiment
    arms = [await c.definition(exp.process, arm.version) for arm in exp.arms]
    results = [await compare(c.pool, arms[0], other, experiment=exp.name) for other in arms[1:]]
    return ExperimentComparison(experiment=exp.name, comparisons=results)


async def customers_of(c: Context, process: str | None = None) -> list[CustomerSummary]:
    return await customers(c.pool, process=process)
