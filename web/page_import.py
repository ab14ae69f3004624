"""The import form of the definitions page: a CRM export in, the report (or its dry run) out; a
refusal back to the definitions page (post/redirect/get, web/flash.py)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.datastructures import UploadFile

from app.import_upload import effects_of, import_files
from client.api import DealflowError, NotFound, Refused
from web import flash
from web.errors import status_of
from web.identity import check_csrf, client_of
from web.views import page_caller, render
from web.wording import for_page

router = APIRouter(include_in_schema=False)

# the form's choices of cell separator, by the value each option sends
DELIMITERS = {"comma": ",", "semicolon": ";", "tab": "\t", "pipe": "|"}
MAX_EXPORT = 200 * 1024 * 1024  # bytes per file: a CRM's whole history fits


def _delimiter(choice: str) -> str:
    if choice not in DELIMITERS:
        raise Refused(
            f"cells separated by {choice!r}: expected one of {', '.join(DELIMITERS)}",
            code="invalid_request",
            details={"input": "delimiter"},
        )
    return DELIMITERS[choice]


async def _bytes(upload: UploadFile) -> bytes:
    data = await upload.read(MAX_EXPORT + 1)
    if len(data) > MAX_EXPORT:
        raise DealflowError(f"{upload.filename} is larger than {MAX_EXPORT:,} bytes", code="invalid_request")
    return data


@router.post("/imports", response_class=HTMLResponse)
async def import_page(request: Request) -> Response:
    caller = await page_caller(request)
    form = await request.form()
    check_csrf(request, str(form.get("csrf_token", "")))
    exports = [f for f in form.getlist("files") if isinstance(f, UploadFile) and f.filename]
    mapping = form.get("map")
    try:
        report = await import_files(
            client_of(request),
            str(form.get("source", "")),
            {(f.filename or "").replace("\\", "/").rsplit("/", 1)[-1]: await _bytes(f) for f in exports},
            process=str(form.get("process", "")),
            mapping=await _bytes(mapping) if isinstance(mapping, UploadFile) and mapping.filename else None,
            actor=caller.name,
            dry_run=form.get("dry_run") is not None,
            pipeline=str(form.get("pipeline", "")).strip() or None,
            time_zone=str(form.get("time_zone", "UTC")).strip() or "UTC",
            effects=effects_of(str(form.get("effects", "future"))),
            delimiter=_delimiter(str(form.get("delimiter", "comma"))),
            encoding=str(form.get("encoding", "utf-8-sig")).strip() or "utf-8-sig",
        )
    except DealflowError as exc:
        shown = {"error": for_page(exc), "error_code": exc.code}
        if isinstance(exc, Refused | NotFound) and flash.keep(request, "/definitions", shown, {}):
            return RedirectResponse("/definitions", status_code=303)
        return render(request, "import.html", caller, status_of(exc), report=None, **shown)
    return render(request, "import.html", caller, report=report)
