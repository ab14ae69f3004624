"""The rep's pages: the pipeline board and a deal's page with its forms.

A form posts to a route that makes one call of the Python client, and answers with a redirect
(post/redirect/get), so that reloading the page never sends the form again: a refusal redirects to
the form's page, which shows the reason and the values typed (nothing changed, web/flash.py); a
success to the deal's page read from the log at least up to the action's last event, so the rep
sees their change. The rep's action forms (complete, move, win, lose, reply) post to routes
built from the actions' declarations (app/rep_actions.py): a form's fields are the payload's.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Annotated, Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Form, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response

from app import board_service, deal_view
from app.rep_actions import ACTIONS, RepAction, kind_of
from client.api import DealflowClient, NotFound, Refused
from domain import proposal_files
from domain.commands import ActionResult
from domain.events import ProposalGenerated
from web import flash
from web.errors import status_of
from web.identity import Caller, check_csrf, client_of
from web.views import page_caller, render
from web.wording import for_page
from worker.settings import proposals_dir

router = APIRouter(include_in_schema=False)


@router.get("/")
async def home() -> Response:
    return RedirectResponse("/board", status_code=303)


async def _processes(c: DealflowClient) -> list[str]:
    return sorted({d.name for d in await c.definitions()})


def _blank(value: str | None) -> str | None:
    return value.strip() or None if value else None


@router.get("/board", response_class=HTMLResponse)
async def board_page(
    request: Request,
    process: str | None = None,
    owner: str | None = None,
    team: str | None = None,
    version: str | None = None,
    stage: str | None = None,
    fragment: bool = False,
) -> Response:
    caller = await page_caller(request)
    c = client_of(request)
    processes = await _processes(c)
    process = _blank(process) or (processes[0] if processes else None)
    filters = {"owner": _blank(owner), "team": _blank(team), "version": _blank(version), "stage": _blank(stage)}
    refused = {} if fragment else flash.take(request, "/board")
    if process is None:
        return render(request, "board.html", caller, processes=[], board=None, filters=filters, **refused)
    board = await board_service.board(c, process, **filters)
    versions = [d.version for d in await c.definitions() if d.name == process]
    template = "board_columns.html" if fragment else "board.html"
    return render(
        request, template, caller, processes=processes, board=board, filters=filters, versions=versions, **refused
    )


@router.post("/board/start")
async def start_deal(
    request: Request,
    csrf_token: Annotated[str, Form()] = "",
    process: Annotated[str, Form()] = "",
    deal_id: Annotated[str, Form()] = "",
    owner: Annotated[str, Form()] = "",
    value: Annotated[str, Form()] = "",
    customer: Annotated[str, Form()] = "",
) -> Response:
    caller = await page_caller(request)
    check_csrf(request, csrf_token)
    c = client_of(request)
    try:
        try:
            amount = float(value) if value.strip() else None
        except ValueError:
            raise Refused(f"Value: expected a number, got {value!r}", code="invalid_request") from None
        started = await c.start_deal(
            process,
            deal_id.strip(),
            owner.strip() or caller.name,
            actor=caller.name,
            value=amount,
            fields={"customer": customer.strip()} if customer.strip() else {},
        )
    except (Refused, NotFound) as exc:
        typed = {"deal_id": deal_id, "owner": owner, "value": value, "customer": customer}
        processes = await _processes(c)
        if flash.keep(request, "/board", _shown(exc), typed):
            return RedirectResponse(
                f"/board?{urlencode({'process': process})}" if process in processes else "/board", status_code=303
            )
        board = await board_service.board(c, process) if process in processes else None
        filters: dict[str, Any] = {"owner": None, "team": None, "version": None, "stage": None}
        context = {"processes": processes, "board": board, "filters": filters, "versions": [], "typed": typed}
        return render(request, "board.html", caller, status_of(exc), **context, **_shown(exc))
    return RedirectResponse(f"{_deal_path(started.deal_id)}?started=1", status_code=303)


def _shown(exc: Refused | NotFound) -> dict[str, Any]:
    return {"error": for_page(exc), "error_code": exc.code}


def _deal_path(deal_id: str) -> str:
    return f"/deals/{quote(deal_id, safe='')}"


@router.get("/deals/{deal_id}", response_class=HTMLResponse)
async def deal_page(
    request: Request, deal_id: str, seq: int = 0, done: str | None = None, started: bool = False
) -> HTMLResponse:
    caller = await page_caller(request)
    refused = flash.take(request, f"/deals/{deal_id}")
    done = done or ("Deal started." if started else None)
    return await _deal_page(request, caller, deal_id, min_seq=seq, flash=done, **refused)


async def _deal_page(
    request: Request, caller: Caller, deal_id: str, *, status: int = 200, min_seq: int = 0, **context: Any
) -> HTMLResponse:
    c = client_of(request)
    view = await deal_view.view(c, deal_id, actor=caller.name, claim=caller.claim, min_seq=min_seq)
    # one id for the page's forms: a form sent twice (a double click, a resent POST) is one request
    request_id = str(uuid.uuid4())
    return render(request, "deal.html", caller, status, view=view, request_id=request_id, **context)


def _done(deal_id: str, result: ActionResult, what: str) -> Response:
    where = f"now at stage {result.stage}" if result.stage else f"now {result.status}"
    query = urlencode({"seq": result.last_seq, "done": f"{what}: the deal is {where}."})
    return RedirectResponse(f"{_deal_path(deal_id)}?{query}", status_code=303)


async def _act(request: Request, deal_id: str, csrf: str, what: str, call: Any, typed: dict[str, Any]) -> Response:
    """Run one action of the deal's page and redirect to the page: with the change on success, with
    the reason and what was typed on refusal."""
    caller = await page_caller(request)
    check_csrf(request, csrf)
    try:
        result: ActionResult = await call(caller)
    except Refused as exc:
        if flash.keep(request, f"/deals/{deal_id}", _shown(exc), typed):
            return RedirectResponse(_deal_path(deal_id), status_code=303)
        # too long for the session's cookie, even without what was typed: shown in place
        return await _deal_page(request, caller, deal_id, status=status_of(exc), typed=typed, **_shown(exc))
    return _done(deal_id, result, what)


def _values(action: RepAction, form: Any) -> dict[str, Any]:
    """The payload's fields from the action's form, named as the payload names them; a map's
    entries are `ENTRY.KEY` fields (`fact.need`), and a blank field is left out (a required one
    is sent blank, for the client to name)."""
    values: dict[str, Any] = {}
    for name, info in action.payload.model_fields.items():
        kind = kind_of(info)
        if kind == "map":
            prefix = action.entry(name) + "."
            values[name] = {
                k.removeprefix(prefix): str(v) for k, v in form.items() if k.startswith(prefix) and str(v) != ""
            }
        elif kind == "list":
            values[name] = [str(v) for v in form.getlist(name)]
        elif value := str(form.get(name, "")).strip():
            values[name] = value
        elif info.is_required():
            values[name] = ""
    return values


def _unfilled(action: RepAction, form: Any) -> None:
    """The form's own required fields, checked here as the browser would: the form works without it."""
    missing = [
        c.unfilled
        for c in action.checks
        if (value := str(form.get(c.field, "")).strip()) == "" or (c.expected is not None and value != c.expected)
    ]
    if missing:
        raise Refused(f"{action.unfilled}: " + " and ".join(missing), code="invalid_request")


def _rid(form: Any) -> str | None:
    """The form's own request id: a double-submitted form is one request to the deal."""
    value = str(form.get("request_id", "")).strip()
    return value or None


def _page_route(action: RepAction) -> Callable[[Request, str], Awaitable[Response]]:
    """The form route of one rep action: its fields are the payload's, one call runs it."""

    async def act(request: Request, deal_id: str) -> Response:
        form = await request.form()
        values = _values(action, form)
        # unvalidated here: the client checks the values and names what is wrong
        payload = action.payload.model_construct(**values)
        c = client_of(request)

        async def call(caller: Caller) -> ActionResult:
            _unfilled(action, form)
            return await action.run(c, deal_id, payload, caller.name, _rid(form))

        what = action.done.format_map(dict(payload))
        typed = {"action": action.name, **values}
        return await _act(request, deal_id, str(form.get("csrf_token", "")), what, call, typed)

    return act


for _action in ACTIONS:
    router.add_api_route(
        f"/deals/{{deal_id}}/{_action.name}", _page_route(_action), methods=["POST"], name=_action.name
    )


@router.get("/deals/{deal_id}/proposals/{seq}")
async def proposal(request: Request, deal_id: str, seq: int) -> Response:
    """A generated proposal, as HTML. Only a file the deal's log names is ever served, found by its
    place inside the proposals directory (`domain.proposal_files`) and only while it resolves
    to an HTML file there, so no event, link or symbolic link reaches any other file."""
    await page_caller(request)
    events = await client_of(request).events(deal_id)
    found = next((e for e in events if e.seq == seq and isinstance(e, ProposalGenerated)), None)
    if found is None:
        raise NotFound(f"deal {deal_id!r} has no proposal at event {seq}", code="not_found")
    root = proposals_dir().resolve()
    named = proposal_files.relative(found.html_path)
    path = (root / named).resolve()
    if not path.is_relative_to(root) or path.suffix != ".html" or not path.is_file():
        raise NotFound(f"the proposal file {named} of event {seq} is not on this server", code="not_found")
    # sandboxed: whatever the document holds runs no script with this site's cookies
    return FileResponse(path, media_type="text/html", headers={"Content-Security-Policy": "sandbox"})
