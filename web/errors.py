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
from store.db import StoreUnavailable
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
    if exc.code == "throttled":
        return 429
    if isinstance(exc, NotFound) or exc.code in {"unknown_deal", "unknown_process", "not_found"}:
        return 404
    if exc.code == "overloaded":
        return 429
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


# how soon to repeat a request refused for overload or an outage (the repeat of a write under its
# Idempotency-Key is safe)
RETRY_AFTER = {429: "1", 503: "2"}


def error_response(exc: DealflowError) -> JSONResponse:
    status = status_of(exc)
    headers = {"WWW-Authenticate": "Bearer"} if isinstance(exc, Unauthenticated) else {}
    if exc.code == "throttled" and isinstance(exc.details, dict):
        headers["Retry-After"] = str(exc.details["retry_after"])
    elif status in RETRY_AFTER:
        headers["Retry-After"] = RETRY_AFTER[status]
    return JSONResponse(body_of(exc), status_code=status, headers=headers or None)


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


# what asyncpg raises when the database is down, going down, restarting or out of connections:
# the connection fails or drops (OSError, 08xxx, InterfaceError), the server is shutting down or
# starting (57xxx), it refuses more connections (53xxx), or the protocol breaks mid-answer
# (InternalClientError, as when the server dies between two messages)
DATABASE_OUTAGES: tuple[type[Exception], ...] = (
    OSError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.OperatorInterventionError,
    asyncpg.exceptions.InsufficientResourcesError,
    asyncpg.InternalClientError,
    StoreUnavailable,
)


def outage(exc: Exception) -> Unavailable | None:
    """A failure to reach PostgreSQL or Temporal, as the `Unavailable` it is; None for any other."""
    if isinstance(exc, RPCError) and exc.status in (RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED):
        return Unavailable(f"Temporal cannot be reached: {exc.message}")
    if isinstance(exc, OSError) and exc.filename is not None:
        return None  # a file of the server's, not a connection: a fault, and its path is not told
    if isinstance(exc, DATABASE_OUTAGES):
        return Unavailable(f"PostgreSQL cannot be reached: {type(exc).__name__}: {exc}")
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
    codes = {400: "invalid_request", 404: "not_found", 405: "method_not_allowed", 413: "body_too_large"}
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
        (413, "the request body is larger than the route takes; nothing changed"),
        (422, "the request is invalid; nothing changed"),
        (429, "too many writes in flight, or failed sign-ins from this address: repeat after Retry-After seconds"),
        (503, "Temporal or PostgreSQL cannot be reached, or the outcome is unknown (repeat with the same key)"),
    ]
}
