"""Signing in and out of the pages: with a token (access control on), or a name (off)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from client import token_service
from client.api import Unauthenticated
from web.identity import check_csrf, client_of
from web.views import render

router = APIRouter(include_in_schema=False)


def _local(next_path: str | None) -> str:
    """Only a path on this server: a sign-in link cannot send the browser elsewhere."""
    if not next_path or not next_path.startswith("/") or next_path.startswith("//") or "\\" in next_path:
        return "/board"
    return next_path


@router.get("/signin", response_class=HTMLResponse)
async def signin_page(request: Request, next: str | None = None, reason: str | None = None) -> HTMLResponse:
    access_on = client_of(request).access is not None
    return render(request, "signin.html", None, access_on=access_on, next=_local(next), reason=reason)


@router.post("/signin")
async def signin(
    request: Request,
    csrf_token: Annotated[str, Form()] = "",
    token: Annotated[str, Form()] = "",
    name: Annotated[str, Form()] = "",
    next: Annotated[str, Form()] = "/board",
) -> Response:
    check_csrf(request, csrf_token)
    c = client_of(request)
    if c.access is not None:
        try:
            record = await token_service.authenticate(c, token.strip())
        except Unauthenticated as exc:
            return render(request, "signin.html", None, 401, access_on=True, next=_local(next), error=exc.message)
        identity, token_id = record.identity, record.token_id
    else:
        identity, token_id = name.strip() or "local", None
    request.session.clear()  # a new session: nothing of the one before carries over
    request.session.update({"identity": identity, "token_id": token_id})
    return RedirectResponse(_local(next), status_code=303)


@router.post("/signout")
async def signout(request: Request, csrf_token: Annotated[str, Form()] = "") -> Response:
    check_csrf(request, csrf_token)
    request.session.clear()
    return RedirectResponse("/signin", status_code=303)
