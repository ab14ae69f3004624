"""Who is calling: a bearer token, a browser session, or a trusted sign-on proxy's header.

With access control off there is one person at the keyboard: the caller is whoever the
`X-Dealflow-User` header or the session names, else `$DEALFLOW_USER`, else "local".

A session is checked against its row on the server at every request (app/session_service.py);
a token that fails, in a header or at the sign-in form, counts against the client's address
(web/throttle.py) and is recorded in the access refusals.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from fastapi import Request

from app import session_service, token_service
from app.session_service import Lifetimes
from client.api import DealflowClient, DealflowError, Unauthenticated
from domain.access import Claim, Role
from store.tokens import TokenRecord
from web.settings import WebSettings
from web.throttle import FREE_FAILURES, WINDOW, SignInThrottle

Via = Literal["token", "session", "sso", "open"]
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"


@dataclass(frozen=True)
class Caller:
    name: str
    role: Role | None  # None when access control is off
    team: str | None
    via: Via

    @property
    def claim(self) -> Claim | None:
        return None if self.role is None else Claim(role=self.role, team=self.team)


def client_of(request: Request) -> DealflowClient:
    client: DealflowClient = request.app.state.client
    return client


def settings_of(request: Request) -> WebSettings:
    settings: WebSettings = request.app.state.web_settings
    return settings


def now_of(request: Request) -> datetime:
    clock: Callable[[], datetime] = request.app.state.clock
    return clock()


def lifetimes(settings: WebSettings) -> Lifetimes:
    return Lifetimes(timedelta(hours=settings.session_hours), timedelta(minutes=settings.session_idle_minutes))


def address_of(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _token_id(token: str) -> str | None:
    prefix, _, rest = token.partition("_")
    return (rest.partition("_")[0] or None) if prefix == "dft" else None


async def sign_in(request: Request, token: str, how: str) -> TokenRecord:
    """The record of a token presented to sign in (`how`: a header or the form), held back while
    its address has failed too often; each failure is counted and recorded."""
    c, address, now = client_of(request), address_of(request), now_of(request)
    throttle: SignInThrottle = request.app.state.throttle
    wait = throttle.wait(address, now)
    if wait:
        message = (
            f"too many failed sign-ins from {address}: more than {FREE_FAILURES} within "
            f"{int(WINDOW.total_seconds() // 60)} min; try again in {wait} s"
        )
        if throttle.first_refusal(address):
            await token_service.record_refused_sign_in(c, address, how, message)
        raise DealflowError(message, code="throttled", details={"retry_after": wait})
    try:
        record = await token_service.authenticate(c, token)
    except Unauthenticated as exc:
        throttle.failed(address, now)
        named = _token_id(token)
        why = exc.message + (f" (token {named})" if named else "")
        await token_service.record_refused_sign_in(c, address, how, why)
        raise
    throttle.succeeded(address)
    return record


def _known(c: DealflowClient, name: str, via: Via) -> Caller:
    if c.access is None:
        return Caller(name, None, None, via)
    who = c.access.identities.get(name)
    if who is None:
        raise Unauthenticated(f"{name!r} is not an identity of the access configuration", details={"reason": "removed"})
    return Caller(name, who.role, who.team, via)


async def identify(request: Request) -> Caller:
    """The caller, or `Unauthenticated` saying what to send."""
    c = client_of(request)
    settings = settings_of(request)
    auth = request.headers.get("authorization")
    if auth:
        scheme, _, token = auth.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthenticated("the Authorization header must read 'Bearer <token>'")
        record = await sign_in(request, token.strip(), "bearer token")
        return _known(c, record.identity, "token")
    if settings.sso_header:
        host = request.client.host if request.client else None
        named = request.headers.get(settings.sso_header)
        if named and settings.trusts_proxy(host):
            return _known(c, named.strip(), "sso")
    session = request.session
    if session.get("sid") or session.get("identity"):
        try:
            identity = await session_service.check(
                c,
                session.get("sid"),
                session.get("identity"),
                session.get("token_id"),
                now=now_of(request),
                limits=lifetimes(settings),
            )
            return _known(c, identity, "session")
        except Unauthenticated:
            session.clear()
            raise
    if c.access is None:
        name = request.headers.get("x-dealflow-user") or os.environ.get("DEALFLOW_USER") or "local"
        return Caller(name, None, None, "open")
    raise Unauthenticated("sign in: send 'Authorization: Bearer <token>' (made by 'dealflow access token create NAME')")


def csrf_token(request: Request) -> str:
    """The session's CSRF token, made on first use; every form carries it back."""
    token = request.session.get(CSRF_FIELD)
    if not token:
        token = secrets.token_urlsafe(32)
        request.session[CSRF_FIELD] = token
    return str(token)


def check_csrf(request: Request, sent: str | None) -> None:
    expected = request.session.get(CSRF_FIELD)
    if not expected or not sent or not secrets.compare_digest(str(expected), sent):
        raise DealflowError(
            "the form's CSRF token is missing or stale: reload the page and submit again",
            code="csrf_failed",
        )


async def api_caller(request: Request) -> Caller:
    """The API's caller. A request signed in by the browser's session cookie (the pages' own
    scripts) must also carry the session's CSRF token to change anything."""
    caller = await identify(request)
    if caller.via == "session" and request.method not in SAFE_METHODS:
        check_csrf(request, request.headers.get(CSRF_HEADER))
    return caller
