"""The pages' routes, and how a failure reaches a browser: a sign-in page when no one is signed
in, an error page naming the problem otherwise (the API answers the same failures as JSON)."""

from __future__ import annotations

from urllib.parse import urlencode

import asyncpg
from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from temporalio.service import RPCError

from client.api import DealflowError, Unauthenticated
from web import page_auth, page_deals, page_import, page_insights, page_ops
from web.errors import DATABASE_OUTAGES, error_response, on_http_error, outage, status_of, unstorable
from web.views import SignInRequired, reason_of, render
from web.wording import for_page


def _is_api(request: Request) -> bool:
    return request.url.path.startswith("/api/")


async def on_sign_in_required(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, SignInRequired)
    query = urlencode({"next": exc.next_path, "reason": exc.reason})
    return RedirectResponse(f"/signin?{query}", status_code=303)


async def on_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, DealflowError)
    if _is_api(request):
        return error_response(exc)
    if isinstance(exc, Unauthenticated):
        return await on_sign_in_required(request, SignInRequired(request.url.path, reason_of(exc)))
    page = render(request, "error.html", None, status_of(exc), error=for_page(exc), error_code=exc.code)
    if exc.code == "throttled" and isinstance(exc.details, dict):
        page.headers["Retry-After"] = str(exc.details["retry_after"])
    return page


async def on_http(request: Request, exc: Exception) -> Response:
    """An unknown page or a wrong method: JSON for the API, the error page for a browser."""
    assert isinstance(exc, StarletteHTTPException)
    if _is_api(request):
        return await on_http_error(request, exc)
    code = {404: "not_found", 405: "method_not_allowed", 413: "body_too_large"}.get(exc.status_code, "error")
    return render(request, "error.html", None, exc.status_code, error=str(exc.detail), error_code=code)


async def on_outage(request: Request, exc: Exception) -> Response:
    """A server that cannot be reached answers 503, naming which; anything else is a fault (500)."""
    named = outage(exc) or unstorable(exc)
    if named is None:
        raise exc
    return await on_error(request, named)


def install(app: FastAPI) -> None:
    for router in (page_auth.router, page_deals.router, page_ops.router, page_insights.router, page_import.router):
        app.include_router(router)
    app.add_exception_handler(SignInRequired, on_sign_in_required)
    app.add_exception_handler(DealflowError, on_error)
    for kind in (
        *DATABASE_OUTAGES,
        RPCError,
        asyncpg.DataError,
        UnicodeEncodeError,
        OverflowError,
    ):
        app.add_exception_handler(kind, on_outage)
    app.add_exception_handler(StarletteHTTPException, on_http)
