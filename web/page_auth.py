"""Signing in and out of the pages: with a token (access control on), or a name (off).

The sign-in page shows only this server's own words: a `reason=` in its address picks one of
REASONS by its code, and any other text is ignored.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from app import session_service
from client.api import DealflowError, Unauthenticated
from web.identity import check_csrf, client_of, lifetimes, now_of, settings_of, sign_in
from web.views import render

router = APIRouter(include_in_schema=False)

REASONS = {
    "signin": "Sign in to go on.",
    "signed_out": "You signed out.",
    "ended": "This session was ended: sign in again.",
    "expired": "Your session reached its time limit: sign in again.",
    "idle": "Your session lapsed after a while without use: sign in again.",
    "revoked": "The token this session signed in with was revoked or has expired: sign in with another.",
    "removed": "Your name is no longer in this server's access configuration.",
    "invalid": "This browser's session is not valid here: sign in again.",
}


def _local(next_path: str | None) -> str:
    """Only a path on this server: a sign-in link cannot send the browser elsewhere."""
    if not next_path or not next_path.startswith("/") or next_path.startswith("//") or "\\" in next_path:
        return "/board"
    return next_path


@router.get("/signin", response_class=HTMLResponse)
async def signin_page(request: Request, next: str | None = None, reason: str | None = None) -> HTMLResponse:
    access_on = client_of(request).access is not None
    shown = REASONS.get(reason or "")  # never the link's own text
    return render(request, "signin.html", None, access_on=access_on, next=_local(next), reason=shown)


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
            record = await sign_in(request, token.strip(), "sign-in form")
        except Unauthenticated as exc:
            return render(request, "signin.html", None, 401, access_on=True, next=_local(next), error=exc.message)
        except DealflowError as exc:
            if exc.code != "throttled":
                raise
            answer = render(request, "signin.html", None, 429, access_on=True, next=_local(next), error=exc.message)
            answer.headers["Retry-After"] = str(exc.details["retry_after"])
            return answer
        identity, token_id = record.identity, record.token_id
    else:
        identity, token_id = name.strip() or "local", None
    now = now_of(request)
    if request.session.get("sid"):
        await session_service.end(c, str(request.session["sid"]), now=now, because="signed in again")
    sid = await session_service.start(c, identity, token_id, now=now, limits=lifetimes(settings_of(request)))
    request.session.clear()  # a new session: nothing of the one before carries over
    request.session.update({"sid": sid, "identity": identity, "token_id": token_id})
    return RedirectResponse(_local(next), status_code=303)


@router.post("/signout")
async def signout(request: Request, csrf_token: Annotated[str, Form()] = "") -> Response:
    check_csrf(request, csrf_token)
    sid = request.session.get("sid")
    if sid:
        await session_service.end(client_of(request), str(sid), now=now_of(request), because="signed out")
    request.session.clear()
    return RedirectResponse("/signin?reason=signed_out", status_code=303)
