"""/api/v1/definitions and /api/v1/experiments: what ops deploy, compare, migrate and test."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from app import board_service, definition_service, experiment_service
from app.definition_service import DefinitionView, DeployPreview, VersionDiff
from app.experiment_service import ExperimentView
from app.migration import MigrationPlan
from client.api import DealflowClient, DealflowError
from definitions.model import json_schema
from web.dependencies import Client, Key, Who
from web.errors import RESPONSES
from web.idempotency import once
from web.schemas import Board, public
from web.wording import for_api

router = APIRouter(tags=["definitions"], responses=RESPONSES)


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DefinitionUpload(_Body):
    filename: str = Field(default="process.yaml", min_length=1, description="the file's name, as errors will cite it")
    yaml: str = Field(min_length=1, description="the definition's YAML text")
    templates: dict[str, str] = Field(default={}, description="template files it names, by file name")


class Deployed(BaseModel):
    name: str
    version: str
    content_hash: str
    stages: int
    deployed_by: str
    deployed_at: str
    source: str | None
    created: bool = Field(description="false when this exact content was already deployed")
    warnings: list[str] = Field(default=[], description="what the definition should still be checked for")


class MigrationRequest(_Body):
    from_version: str = Field(min_length=1)
    to_version: str = Field(min_length=1)
    stage_map: dict[str, str] = Field(default={}, description="where deals at an old stage go, old id -> new id")
    dry_run: bool = True


class Move(BaseModel):
    deal_id: str
    from_stage: str | None
    to_stage: str | None


class Stranded(BaseModel):
    deal_id: str
    stage: str | None
    reason: str


class MigrationOutcome(BaseModel):
    deal_id: str
    ok: bool
    last_seq: int | None = None
    code: str | None = None
    message: str | None = None


class MigrationAnswer(BaseModel):
    process: str
    from_version: str
    to_version: str
    stage_map: dict[str, str]
    moves: list[Move]
    stranded: list[Stranded]
    applied: bool
    results: list[MigrationOutcome]


class ExperimentUpload(_Body):
    yaml: str = Field(min_length=1, description="the experiment's YAML: experiment, process, arms")


def _deployed(d: Any, warnings: list[str] | None = None) -> Deployed:
    return Deployed(
        warnings=warnings or [],
        name=d.name,
        version=d.version,
        content_hash=d.content_hash,
        stages=d.stages,
        deployed_by=d.deployed_by,
        deployed_at=d.deployed_at.isoformat(),
        source=d.source,
        created=d.created,
    )


def _plan(plan: MigrationPlan, applied: bool, results: list[MigrationOutcome]) -> MigrationAnswer:
    return MigrationAnswer(
        process=plan.process,
        from_version=plan.source.version,
        to_version=plan.target.version,
        stage_map=plan.stage_map,
        moves=[Move(deal_id=m.deal_id, from_stage=m.from_stage, to_stage=m.to_stage) for m in plan.moves],
        stranded=[Stranded(deal_id=s.deal_id, stage=s.stage, reason=s.reason) for s in plan.stranded],
        applied=applied,
        results=results,
    )


@router.get("/definitions", response_model=list[Deployed], name="list")
async def list_definitions(c: Client, caller: Who, process: str | None = None) -> list[Deployed]:
    return [_deployed(d) for d in await c.definitions() if process is None or d.name == process]


@router.get("/definitions/schema", name="schema")
async def definition_schema(caller: Who) -> dict[str, Any]:
    """The JSON Schema of definition files."""
    return json_schema()


@router.post("/definitions/validate", response_model=DeployPreview)
async def validate(body: DefinitionUpload, c: Client, caller: Who) -> DeployPreview:
    """Check a definition and compare it with what is deployed; write nothing (a deploy's dry run)."""
    return await _preview(c, body)


async def _preview(c: DealflowClient, body: DefinitionUpload) -> DeployPreview:
    checked = definition_service.check_upload(body.filename, body.yaml, body.templates)
    return await definition_service.preview(c, checked.pinned, body.filename, [str(w) for w in checked.warnings])


@router.post(
    "/definitions",
    status_code=201,
    response_model=Deployed,
    responses={
        200: {"model": DeployPreview, "description": "the preview of a dry run (`dry_run=true`): nothing stored"}
    },
)
async def deploy(
    body: DefinitionUpload,
    request: Request,
    c: Client,
    caller: Who,
    key: Key = None,
    dry_run: Annotated[bool, Query(description="validate and preview only (as /definitions/validate)")] = False,
) -> JSONResponse:
    """Deploy a definition (201, `Deployed`), or with `dry_run=true` preview it (200,
    `DeployPreview`): a dry run stores nothing, so it is not a creation."""
    if dry_run:
        return JSONResponse(jsonable_encoder(await _preview(c, body)), status_code=200)

    async def run() -> Deployed:
        deployment, warnings = await definition_service.deploy_upload(
            c, body.filename, body.yaml, body.templates, deployed_by=caller.name
        )
        return _deployed(deployment, warnings)

    return await once(request, caller, key, run, status=201)


@router.get("/definitions/{name}", response_model=DefinitionView)
async def show(name: str, c: Client, caller: Who, version: str | None = None) -> DefinitionView:
    return await definition_service.show(c, name, version)


@router.get("/definitions/{name}/diff", response_model=VersionDiff)
async def diff(
    name: str,
    c: Client,
    caller: Who,
    from_version: Annotated[str, Query(alias="from")],
    to_version: Annotated[str, Query(alias="to")],
) -> VersionDiff:
    return await definition_service.compare_versions(c, name, from_version, to_version)


@router.post("/definitions/{name}/migrations", response_model=MigrationAnswer)
async def migrate(
    name: str, body: MigrationRequest, request: Request, c: Client, caller: Who, key: Key = None
) -> JSONResponse | MigrationAnswer:
    """Plan a migration (dry_run, the default) or apply it. A plan that would strand a deal on a
    stage the new version lacks is refused before anything is sent."""
    plan = await c.plan_migration(name, body.from_version, body.to_version, body.stage_map)
    if body.dry_run:
        return _plan(plan, False, [])

    async def run() -> MigrationAnswer:
        outcomes = await c.apply_migration(plan, actor=caller.name)
        results = [
            MigrationOutcome(deal_id=deal_id, ok=False, code=r.code, message=for_api(r))
            if isinstance(r, DealflowError)
            else MigrationOutcome(deal_id=deal_id, ok=True, last_seq=r.last_seq)
            for deal_id, r in outcomes
        ]
        return _plan(plan, True, results)

    return await once(request, caller, key, run)


@router.get("/processes/{process}/board", response_model=Board, tags=["deals"], name="board")
async def process_board(
    process: str,
    c: Client,
    caller: Who,
    owner: str | None = None,
    team: str | None = None,
    version: str | None = None,
    stage: str | None = None,
) -> Board:
    """The pipeline board: per stage its deals (the longest in the stage first, up to 50, or 1000
    for one stage), their count and weighted value."""
    found = await board_service.board(c, process, owner=owner, team=team, version=version, stage=stage)
    return public(Board, found)


@router.get("/experiments", response_model=list[ExperimentView], tags=["experiments"], name="list")
async def list_experiments(c: Client, caller: Who) -> list[ExperimentView]:
    return await experiment_service.list_all(c)


@router.post("/experiments", status_code=201, response_model=ExperimentView, tags=["experiments"], name="start")
async def start_experiment(
    body: ExperimentUpload, request: Request, c: Client, caller: Who, key: Key = None
) -> JSONResponse:
    exp = experiment_service.parse(body.yaml, "experiment.yaml")

    async def run() -> ExperimentView:
        return await experiment_service.start(c, exp, started_by=caller.name)

    return await once(request, caller, key, run, status=201)


@router.get("/experiments/{name}", response_model=ExperimentView, tags=["experiments"], name="show")
async def show_experiment(name: str, c: Client, caller: Who) -> ExperimentView:
    return await experiment_service.show(c, name)


@router.post("/experiments/{name}/stop", response_model=ExperimentView, tags=["experiments"], name="stop")
async def stop_experiment(name: str, request: Request, c: Client, caller: Who, key: Key = None) -> JSONResponse:
    async def run() -> ExperimentView:
        return await experiment_service.stop(c, name, stopped_by=caller.name)

    return await once(request, caller, key, run)
