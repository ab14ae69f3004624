"""/api/v1/imports: bring deals over from a CRM export (docs/import.md), as the CLI does."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from app.import_service import ImportReport
from app.import_upload import import_files
from web.dependencies import Client, Key, Who
from web.errors import RESPONSES
from web.idempotency import once

router = APIRouter(tags=["imports"], responses=RESPONSES)


class ImportRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    source: Literal["salesforce", "hubspot", "pipedrive", "csv"]
    process: str = Field(min_length=1)
    files: dict[str, str] = Field(
        min_length=1, description="the export's CSV text by file name (Salesforce: opportunities, then history)"
    )
    map: str | None = Field(default=None, description="the mapping file's YAML (required but for csv)")
    pipeline: str | None = Field(default=None, description="HubSpot: which pipeline's deals")
    time_zone: str = "UTC"
    delimiter: str = Field(
        default=",", min_length=1, max_length=1, description="the export's cell separator: ',', ';', a tab or '|'"
    )
    dry_run: bool = True
    effects: Literal["none", "future", "all"] = Field(
        default="future", description="what open deals send for their past (docs/import.md)"
    )


@router.post("/imports", response_model=ImportReport, name="run")
async def run_import(body: ImportRequest, request: Request, c: Client, caller: Who, key: Key = None) -> JSONResponse:
    """Plan (dry_run, the default) or run an import. Rows that cannot be taken are listed in
    `problems` with their file and line; the others are imported, once."""

    async def run() -> ImportReport:
        return await import_files(
            c,
            body.source,
            {name: text.encode() for name, text in body.files.items()},
            process=body.process,
            mapping=body.map.encode() if body.map is not None else None,
            actor=caller.name,
            dry_run=body.dry_run,
            pipeline=body.pipeline,
            time_zone=body.time_zone,
            effects=body.effects,
            delimiter=body.delimiter,
            encoding="utf-8",  # JSON carries text: the files arrive decoded
        )

    return await once(request, caller, key, run)
