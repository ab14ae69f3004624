"""Process experiments: new deals of a process split between deployed versions by weight.

The assignment is a stable hash of the experiment's name and the deal id, so the same deal id
always lands on the same arm (a retried start cannot switch arms), assignments are independent
across experiments, and no state is needed to make them. The share of deals on each arm tends to
its weight over the weights' sum.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import yaml
from pydantic import Field, ValidationError, model_validator

from definitions.loader import DefinitionError, DefinitionProblem, format_path, line_of
from definitions.model import Identifier, StrictModel


class Arm(StrictModel):
    version: str = Field(min_length=1, description="a deployed version of the process")
    weight: int = Field(default=1, ge=1, le=1000)


class Experiment(StrictModel):
    experiment: Identifier = Field(description="the experiment's name")
    process: str = Field(min_length=1)
    description: str = ""
    arms: list[Arm] = Field(min_length=2)

    @model_validator(mode="after")
    def _distinct_versions(self) -> Experiment:
        versions = [a.version for a in self.arms]
        if len(set(versions)) != len(versions):
            raise ValueError("each arm must be a different version")
        return self

    @property
    def name(self) -> str:
        return self.experiment


def bucket(experiment: str, deal_id: str) -> float:
    """A number in [0, 1) fixed by the experiment and the deal id."""
    digest = hashlib.sha256(f"{experiment}\n{deal_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def assign(experiment: Experiment, deal_id: str) -> str:
    """The version a new deal runs on."""
    point = bucket(experiment.name, deal_id) * sum(a.weight for a in experiment.arms)
    for arm in experiment.arms:
        if point < arm.weight:
            return arm.version
        point -= arm.weight
    return experiment.arms[-1].version


def load_experiment(path: str | Path) -> Experiment:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        message = f"cannot read: {getattr(exc, 'strerror', None) or exc}"
        raise DefinitionError([DefinitionProblem(str(path), "", message)]) from None
    return parse_experiment(text, source=str(path))


def parse_experiment(text: str, *, source: str = "<experiment>") -> Experiment:
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        raise DefinitionError([DefinitionProblem(source, "", f"not valid YAML: {exc}", line)]) from None
    if not isinstance(data, dict):
        raise DefinitionError([DefinitionProblem(source, "", "expected a mapping with experiment, process, arms", 1)])
    try:
        return Experiment.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc = tuple(err["loc"])
            msg = err["msg"].removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                msg = f"unknown field {loc[-1]!r}"
            problems.append(DefinitionProblem(source, format_path(loc), msg, line_of(root, loc)))
        raise DefinitionError(problems) from None
