"""The ops pages: deployed definitions, deploying an upload, comparing versions, migrating running
deals, experiments.

Every change goes in two steps: a dry run that writes nothing and shows what would happen (a
deploy's preview, a migration's plan), then a button that sends exactly what was shown. The
handlers call the same functions as the CLI and the API (`definition_service`, the client's
migration calls, `experiment_service`); what a role may do is the client's rule, asked before a
dry run too, so that a form a role does not get is refused whatever posts it. A refused form
redirects back to its page, which shows the refusal (web/flash.py).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Awaitable, Callable
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.datastructures import FormData, UploadFile

from app import definition_service, experiment_service, permissions
from app.migration import MigrationPlan
from client.api import DealflowClient, DealflowError, NotFound, Refused
from store.registry import Deployment
from web import flash
from web.errors import status_of
from web.identity import Caller, check_csrf, client_of
from web.views import page_caller, render
from web.wording import for_page

router = APIRouter(include_in_schema=False)

MAX_UPLOAD = 1_000_000  # bytes per file: a definition or a template is a few kilobytes


# refusals whose details list every problem found, each with its place in the file
LOCATED = {"invalid_definition", "invalid_experiment"}


def refusal(exc: DealflowError) -> dict[str, Any]:
    """What a page shows of a refusal: the message and its code, and for a file that does not load,
    each problem on a line of its own (its message joins them all into one)."""
    if exc.code in LOCATED and isinstance(exc.details, list) and exc.details:
        problems = [str(p) for p in exc.details]
        found = f"{len(problems)} problem{'s' if len(problems) != 1 else ''}"
        return {"error": f"{found} found, each listed below", "error_code": exc.code, "problems": problems}
    return {"error": for_page(exc), "error_code": exc.code, "problems": []}


async def _back(
    request: Request,
    page: str,
    exc: DealflowError,
    typed: dict[str, Any],
    in_place: Callable[[int, dict[str, Any]], Awaitable[HTMLResponse]],
) -> Response:
    """A refused form: a redirect back to its `page` (a path), which shows the refusal and what was
    typed; shown `in_place(status, shown)` instead, as the post's answer, when the refusal is too
    long to keep."""
    shown = refusal(exc)
    if flash.keep(request, page, shown, typed):
        return RedirectResponse(quote(page), status_code=303)
    return await in_place(status_of(exc), shown)


def _grouped(deployments: list[Deployment]) -> dict[str, list[Deployment]]:
    """Versions by process, newest first: the first is the one a new deal starts on."""
    out: dict[str, list[Deployment]] = {}
    for d in deployments:
        out.setdefault(d.name, []).insert(0, d)
    return out


async def _definitions_page(request: Request, caller: Caller, status: int = 200, **context: Any) -> HTMLResponse:
    c = client_of(request)
    return render(
        request,
        "definitions.html",
        caller,
        status,
        processes=_grouped(await c.definitions()),
        experiments=await experiment_service.list_all(c),
        **context,
    )


@router.get("/definitions", response_class=HTMLResponse)
async def definitions_page(request: Request, done: str | None = None) -> HTMLResponse:
    caller = await page_caller(request)
    return await _definitions_page(request, caller, flash=done, **flash.take(request, "/definitions"))


# --- deploying an upload: preview, then deploy what was previewed ---


def _plain_name(name: str | None) -> str:
    # a browser sends the file's own name; some once sent a whole path
    return PurePosixPath((name or "").replace("\\", "/")).name


async def _text_of(upload: UploadFile) -> str:
    name = _plain_name(upload.filename)
    data = await upload.read(MAX_UPLOAD + 1)
    if len(data) > MAX_UPLOAD:
        raise Refused(f"{name} is larger than {MAX_UPLOAD:,} bytes", code="invalid_request")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise Refused(f"{name} is not UTF-8 text", code="invalid_request") from None


def _files(form: FormData, field: str) -> list[UploadFile]:
    return [f for f in form.getlist(field) if isinstance(f, UploadFile) and f.filename]


async def _read_upload(form: FormData) -> tuple[str, str, dict[str, str]]:
    """The definition file and the template files sent with it, by their plain names."""
    chosen = _files(form, "definition")
    if not chosen:
        raise Refused("choose a definition file (.yaml or .yml) to upload", code="invalid_request")
    definition = chosen[0]
    filename = _plain_name(definition.filename)
    if not filename.endswith((".yaml", ".yml")):
        raise Refused(f"{filename}: a definition is a .yaml or .yml file", code="invalid_request")
    templates = {_plain_name(t.filename): await _text_of(t) for t in _files(form, "templates")}
    return filename, await _text_of(definition), templates


def _carry(text: str) -> str:
    """Text for a hidden field, byte for byte: a browser rewrites the line ends of a field's value
    when it posts it, and what is deployed must be the very text that was previewed."""
    return base64.b64encode(text.encode("utf-8")).decode("ascii")


def _carried(value: Any) -> str:
    try:
        return base64.b64decode(str(value), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise Refused("the previewed file did not come back intact: upload it again", code="invalid_request") from None


@router.post("/definitions/preview", response_class=HTMLResponse)
async def preview_upload(request: Request) -> Response:
    caller = await page_caller(request)
    form = await request.form(max_part_size=2 * MAX_UPLOAD)
    check_csrf(request, str(form.get("csrf_token", "")))
    c = client_of(request)
    try:
        # asked before the dry run too: a form a role is not offered answers no post either
        named = form.get("definition")
        await permissions.require(
            c, caller.name, "deploy", _plain_name(named.filename) if isinstance(named, UploadFile) else None
        )
        filename, text, templates = await _read_upload(form)
        checked = definition_service.check_upload(filename, text, templates)
        preview = await definition_service.preview(c, checked.pinned, filename, [str(w) for w in checked.warnings])
    except (Refused, NotFound) as exc:
        return await _back(
            request, "/definitions", exc, {}, lambda status, shown: _definitions_page(request, caller, status, **shown)
        )
    carried = {"yaml": _carry(text), "templates": [(name, _carry(t)) for name, t in templates.items()]}
    return render(
        request, "definition_preview.html", caller, preview=preview, text=text, templates=templates, carried=carried
    )


@router.post("/definitions/deploy")
async def deploy_upload(request: Request) -> Response:
    caller = await page_caller(request)
    form = await request.form(max_part_size=2 * MAX_UPLOAD)
    check_csrf(request, str(form.get("csrf_token", "")))
    c = client_of(request)
    filename, previewed = _plain_name(str(form.get("filename", ""))), str(form.get("version", ""))
    try:
        await permissions.require(c, caller.name, "deploy", filename)
        text = _carried(form.get("yaml", ""))
        names = [str(n) for n in form.getlist("template_name")]
        templates = {n: _carried(t) for n, t in zip(names, form.getlist("template_text"), strict=False)}
        pinned = definition_service.load_upload(filename, text, templates)
        if pinned.version != previewed:
            raise Refused(
                f"{filename} now loads as version {pinned.version}, not the {previewed} previewed: preview it again",
                code="preview_stale",
            )
        deployed = await c.deploy_pinned(pinned, deployed_by=caller.name, source=filename)
    except (Refused, NotFound) as exc:
        return await _back(
            request, "/definitions", exc, {}, lambda status, shown: _definitions_page(request, caller, status, **shown)
        )
    if deployed.created:
        done = f"Deployed {deployed.name}@{deployed.version}: new deals of {deployed.name} start on it."
    else:
        done = f"{deployed.name}@{deployed.version} was already deployed: nothing changed."
    query = urlencode({"version": deployed.version, "done": done})
    return RedirectResponse(f"/definitions/{quote(deployed.name, safe='')}?{query}", status_code=303)


# --- one process: a version, the differences between two, migrating running deals ---


async def _definition_page(
    request: Request, caller: Caller, name: str, version: str | None, status: int = 200, **context: Any
) -> HTMLResponse:
    c = client_of(request)
    view = await definition_service.show(c, name, version)
    versions = _grouped(await c.definitions()).get(name, [])
    return render(request, "definition.html", caller, status, view=view, versions=versions, **context)


@router.get("/definitions/{name}", response_class=HTMLResponse)
async def definition_page(
    request: Request, name: str, version: str | None = None, done: str | None = None
) -> HTMLResponse:
    caller = await page_caller(request)
    refused = flash.take(request, f"/definitions/{name}")
    return await _definition_page(request, caller, name, version or None, flash=done, **refused)


@router.get("/definitions/{name}/diff", response_class=HTMLResponse)
async def diff_page(request: Request, name: str) -> HTMLResponse:
    caller = await page_caller(request)
    old, new = request.query_params.get("from", ""), request.query_params.get("to", "")
    c = client_of(request)
    versions = _grouped(await c.definitions()).get(name, [])
    if not versions:
        raise NotFound(f"no process {name!r} is deployed", code="unknown_process")
    if not old or not new:
        return render(
            request,
            "definition_diff.html",
            caller,
            422,
            name=name,
            versions=versions,
            diff=None,
            picked={"from": old, "to": new},
            error="pick the two versions to compare",
            error_code="invalid_request",
        )
    diff = await definition_service.compare_versions(c, name, old, new)
    return render(
        request,
        "definition_diff.html",
        caller,
        name=name,
        versions=versions,
        diff=diff,
        picked={"from": old, "to": new},
    )


def stage_map_of(text: str) -> dict[str, str]:
    """`OLD=NEW` lines (blank lines skipped), as `dealflow definitions migrate --map` reads them."""
    out: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        old, sep, new = (part.strip() for part in line.partition("="))
        if not sep or not old or not new:
            raise Refused(f"stage map line {number}: expected OLD=NEW, got {line.strip()!r}", code="invalid_request")
        out[old] = new
    return out


async def _migration_form(request: Request) -> tuple[Caller, FormData, dict[str, str]]:
    caller = await page_caller(request)
    form = await request.form()
    check_csrf(request, str(form.get("csrf_token", "")))
    typed = {k: str(form.get(k, "")).strip() for k in ("from_version", "to_version", "stage_map")}
    return caller, form, typed


async def _plan(c: DealflowClient, name: str, typed: dict[str, str]) -> MigrationPlan:
    mapping = stage_map_of(typed["stage_map"])
    return await c.plan_migration(name, typed["from_version"], typed["to_version"], mapping)


async def _back_to_migrate(
    request: Request, caller: Caller, name: str, exc: DealflowError, typed: dict[str, str]
) -> Response:
    async def in_place(status: int, shown: dict[str, Any]) -> HTMLResponse:
        return await _definition_page(request, caller, name, None, status, typed=typed, **shown)

    return await _back(request, f"/definitions/{name}", exc, dict(typed), in_place)


@router.post("/definitions/{name}/migration", response_class=HTMLResponse)
async def migration_preview(request: Request, name: str) -> Response:
    caller, _, typed = await _migration_form(request)
    c = client_of(request)
    try:
        await permissions.require(c, caller.name, "migrate", name)
        plan = await _plan(c, name, typed)
    except (Refused, NotFound) as exc:
        return await _back_to_migrate(request, caller, name, exc, typed)
    return render(request, "migration.html", caller, plan=plan, typed=typed, results=None)


@router.post("/definitions/{name}/migration/apply", response_class=HTMLResponse)
async def migration_apply(request: Request, name: str) -> Response:
    """Apply the plan previewed, made again from the deals as they are now. Its answer is this
    page rather than a redirect: each deal's result is the news, and the migration's request ids
    come from the plan, so a page sent again moves no deal twice."""
    caller, _, typed = await _migration_form(request)
    c = client_of(request)
    try:
        await permissions.require(c, caller.name, "migrate", name)
        plan = await _plan(c, name, typed)
        results = await c.apply_migration(plan, actor=caller.name)
    except (Refused, NotFound) as exc:
        return await _back_to_migrate(request, caller, name, exc, typed)
    rows = [
        {"deal_id": deal_id, "ok": False, "code": r.code, "message": for_page(r)}
        if isinstance(r, DealflowError)
        else {"deal_id": deal_id, "ok": True, "stage": r.stage, "last_seq": r.last_seq}
        for deal_id, r in results
    ]
    moved = sum(1 for row in rows if row["ok"])
    flash = f"Migration applied: {moved} of {len(rows)} deal{'s' if len(rows) != 1 else ''} moved to {plan.target.ref}."
    return render(request, "migration.html", caller, plan=plan, typed=typed, results=rows, flash=flash)


# --- experiments ---


@router.post("/experiments")
async def start_experiment(request: Request) -> Response:
    caller = await page_caller(request)
    form = await request.form(max_part_size=2 * MAX_UPLOAD)
    check_csrf(request, str(form.get("csrf_token", "")))
    c = client_of(request)
    text, source = str(form.get("yaml", "")), "experiment.yaml"
    try:
        uploaded = _files(form, "file")
        if uploaded:
            text, source = await _text_of(uploaded[0]), _plain_name(uploaded[0].filename)
        if not text.strip():
            raise Refused("paste the experiment's YAML or choose its file", code="invalid_request")
        started = await experiment_service.start(c, experiment_service.parse(text, source), started_by=caller.name)
    except (Refused, NotFound) as exc:
        typed = {"experiment": text}

        async def in_place(status: int, shown: dict[str, Any]) -> HTMLResponse:
            return await _definitions_page(request, caller, status, typed=typed, **shown)

        return await _back(request, "/definitions", exc, typed, in_place)
    arms = ", ".join(f"{a.version} (weight {a.weight})" for a in started.arms)
    done = f"Experiment {started.experiment} started: new deals of {started.process} are split between {arms}."
    return RedirectResponse(f"/definitions?{urlencode({'done': done})}#experiments", status_code=303)


@router.post("/experiments/{name}/stop")
async def stop_experiment(request: Request, name: str) -> Response:
    caller = await page_caller(request)
    form = await request.form()
    check_csrf(request, str(form.get("csrf_token", "")))
    try:
        stopped = await experiment_service.stop(client_of(request), name, stopped_by=caller.name)
    except (Refused, NotFound) as exc:
        return await _back(
            request, "/definitions", exc, {}, lambda status, shown: _definitions_page(request, caller, status, **shown)
        )
    done = (
        f"Experiment {stopped.experiment} stopped: its deals keep their versions; "
        f"new deals of {stopped.process} start on its latest version."
    )
    return RedirectResponse(f"/definitions?{urlencode({'done': done})}#experiments", status_code=303)
