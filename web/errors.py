"""Every failure as JSON `{code, message, details}`, with the CLI's codes and an HTTP status.

A refusal the request itself causes (a wrong fact, an unknown stage, a malformed body) is 422; one
the deal's present state causes (it moved on, it is closed) is 409; the rest follow HTTP.
"""

from __future__ import annotations

from typing import Any

import asyncpg
from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException
from temporalio.service import RPCError, RPCStatusCode

from client.api import DealflowError, NotFound, OutcomeUnknown, Unauthenticated, Unavailable
from web.wording import for_api

UNPROCESSABLE = {
    "invalid_request",
    "invalid_definition",
    "invalid_experiment",
    "invalid_plan",
    "invalid_fact",
    "unknown_fact",
    "unknown_reason",
    "unknown_rebuy",
    "unknown_stage",
    "unknown_identity",
    "missing_facts",
    "reason_required",
    "idempotency_key_reused",
    "invalid_mapping",
    "invalid_export",
}


class ErrorBody(BaseModel):
    code: str
    message: str
    details: Any = None


def status_of(exc: DealflowError) -> int:
    if isinstance(exc, Unauthenticated):
        return 401
    if exc.code in {"forbidden", "csrf_failed"}:
        return 403
    if isinstance(exc, NotFound) or exc.code in {"unknown_deal", "unknown_process", "not_found"}:
        return 404
    if isinstance(exc, Unavailable | OutcomeUnknown):
        return 503
    if exc.code in UNPROCESSABLE:
        return 422
    return 409


def body_of(exc: DealflowError) -> dict[str, Any]:
    details = exc.details
    if isinstance(exc, OutcomeUnknown) and exc.request_id:
        details = {**(details if isinstance(details, dict) else {}), "request_id": exc.request_id}
    return ErrorBody(code=exc.code, message=for_api(exc), details=details).model_dump(mode="json")


def error_response(exc: DealflowError) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if isinstance(exc, Unauthenticated) else None
    return JSONResponse(body_of(exc), status_code=status_of(exc), headers=headers)


def invalid_request(exc: RequestValidationError) -> DealflowError:
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err.get("loc", ()) if p != "body") or "request"
        parts.append(f"{where}: {err.get('msg', 'invalid')}")
    return DealflowError(
        "invalid request: " + "; ".join(parts),
        code="invalid_request",
        details=[{"loc": list(e.get("loc", ())), "msg": e.get("msg")} for e in exc.errors()],
    )


async def on_dealflow_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, DealflowError)
    return error_response(exc)


def outage(exc: Exception) -> Unavailable | None:
    """A failure to reach PostgreSQL or Temporal, as the `Unavailable` it is; None for any other."""
    if isinstance(exc, RPCError) and exc.status in (RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED):
        return Unavailable(f"Temporal cannot be reached: {exc.message}")
    if isinstance(
        exc, OSError | asyncpg.PostgresConnectionError | asyncpg.InterfaceError | asyncpg.CannotConnectNowError
    ):
        return Unavailable(f"PostgreSQL cannot be reached: {exc}")
    return None


def unstorable(exc: Exception) -> DealflowError | None:
    """Text PostgreSQL cannot store (a NUL character, a lone surrogate) or a number out of its
    range, as the request's fault: 422, not a server error."""
    if isinstance(exc, asyncpg.DataError | UnicodeEncodeError | OverflowError):
        return DealflowError(
            f"the request holds a value the store cannot take ({type(exc).__name__}: {exc})", code="invalid_request"
        )
    return None


async def on_http_error(request: Request, exc: Exception) -> JSONResponse:
    """Starlette's own refusals (an unknown path, a wrong method, a body that is not JSON) in the
    API's error shape; a body that cannot be read at all is invalid like any other (422)."""
    assert isinstance(exc, StarletteHTTPException)
    codes = {400: "invalid_request", 404: "not_found", 405: "method_not_allowed"}
    status = 422 if exc.status_code == 400 else exc.status_code
    body = ErrorBody(code=codes.get(exc.status_code, "error"), message=str(exc.detail)).model_dump(mode="json")
    return JSONResponse(body, status_code=status, headers=getattr(exc, "headers", None))


async def on_validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return error_response(invalid_request(exc))


# the error responses each API route documents in OpenAPI
RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody, "description": what}
    for status, what in [
        (401, "no identity: no token, or one unknown, revoked or expired"),
        (403, "the identity's role may not do this"),
        (404, "no such deal, process, experiment or token"),
        (409, "refused by the deal's present state; nothing changed"),
        (422, "the request is invalid; nothing changed"),
        (503, "Temporal or PostgreSQL cannot be reached, or the outcome is unknown (repeat with the same key)"),
    ]
}
