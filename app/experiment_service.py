"""A/B experiments between versions, as the CLI and the web app show and run them."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel

from app import permissions
from app.context import Context
from app.errors import NotFound, Refused
from definitions.experiment import Experiment, load_experiment, parse_experiment
from definitions.loader import DefinitionError
from store import experiments
from store.experiments import ExperimentRecord


class ArmView(BaseModel):
    version: str
    weight: int
    deals: int


class ExperimentView(BaseModel):
    experiment: str
    process: str
    description: str
    arms: list[ArmView]
    started_by: str
    started_at: datetime
    stopped_by: str | None
    stopped_at: datetime | None
    running: bool

    @classmethod
    def of(cls, r: ExperimentRecord, counts: dict[str, int] | None = None) -> ExperimentView:
        e = r.experiment
        return cls(
            experiment=e.name,
            process=e.process,
            description=e.description,
            arms=[ArmView(version=a.version, weight=a.weight, deals=(counts or {}).get(a.version, 0)) for a in e.arms],
            started_by=r.started_by,
            started_at=r.started_at,
            stopped_by=r.stopped_by,
            stopped_at=r.stopped_at,
            running=r.running,
        )


def load(path: str) -> Experiment:
    try:
        return load_experiment(path)
    except DefinitionError as exc:
        raise Refused(str(exc), code="invalid_experiment", details=[str(p) for p in exc.problems]) from None


def parse(text: str, source: str) -> Experiment:
    try:
        return parse_experiment(text, source=source)
    except DefinitionError as exc:
        raise Refused(str(exc), code="invalid_experiment", details=[str(p) for p in exc.problems]) from None


async def begin(c: Context, exp: Experiment, *, started_by: str) -> ExperimentRecord:
    await permissions.require(c, started_by, "experiment", exp.name)
    try:
        return await experiments.start(c.pool, exp, started_by=started_by)
    except experiments.ExperimentRefused as exc:
        raise Refused(str(exc), code="experiment_refused") from None


async def end(c: Context, name: str, *, stopped_by: str) -> ExperimentRecord:
    await permissions.require(c, stopped_by, "experiment", name)
    try:
        return await experiments.stop(c.pool, name, stopped_by=stopped_by)
    except experiments.ExperimentRefused as exc:
        raise Refused(str(exc), code="experiment_refused") from None


async def get(c: Context, name: str) -> ExperimentRecord:
    try:
        return await experiments.get(c.pool, name)
    except experiments.ExperimentRefused as exc:
        raise NotFound(str(exc), code="unknown_experiment") from None


async def start(c: Context, exp: Experiment, *, started_by: str) -> ExperimentView:
    return ExperimentView.of(await begin(c, exp, started_by=started_by))


async def stop(c: Context, name: str, *, stopped_by: str) -> ExperimentView:
    record = await end(c, name, stopped_by=stopped_by)
    return ExperimentView.of(record, await experiments.deals_per_arm(c.pool, name))


async def list_all(c: Context) -> list[ExperimentView]:
    records = await experiments.list_all(c.pool)
    return [ExperimentView.of(r, await experiments.deals_per_arm(c.pool, r.experiment.name)) for r in records]


async def show(c: Context, name: str) -> ExperimentView:
    record = await get(c, name)
    return ExperimentView.of(record, await experiments.deals_per_arm(c.pool, name))
