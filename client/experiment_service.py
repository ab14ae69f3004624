"""A/B experiments between versions, as the CLI and the web app show and run them."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel

from client.api import DealflowClient, Refused
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


async def start(c: DealflowClient, exp: Experiment, *, started_by: str) -> ExperimentView:
    return ExperimentView.of(await c.start_experiment(exp, started_by=started_by))


async def stop(c: DealflowClient, name: str, *, stopped_by: str) -> ExperimentView:
    record = await c.stop_experiment(name, stopped_by=stopped_by)
    return ExperimentView.of(record, await experiments.deals_per_arm(c.pool, name))


async def list_all(c: DealflowClient) -> list[ExperimentView]:
    records = await experiments.list_all(c.pool)
    return [ExperimentView.of(r, await experiments.deals_per_arm(c.pool, r.experiment.name)) for r in records]


async def show(c: DealflowClient, name: str) -> ExperimentView:
    record = await c.experiment(name)
    return ExperimentView.of(record, await experiments.deals_per_arm(c.pool, name))
