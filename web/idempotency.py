"""Run an API write at most once per `Idempotency-Key`: a repeat returns the first answer
(`Idempotent-Replayed: true`) and records nothing.

Deal actions also use the key as the request id, so the deal itself refuses to apply a repeat
even when the first answer never reached the table (the server stopped mid-request).
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse

from client.api import DealflowError, OutcomeUnknown, Unavailable
from store import idempotency
from web.errors import body_of, status_of
from web.identity import Caller, client_of

HEADER = "Idempotency-Key"
MAX_KEY = 200


async def once(
    request: Request,
    caller: Caller,
    key: str | None,
    run: Callable[[], Awaitable[Any]],
    *,
    status: int = 200,
) -> JSONResponse:
    """`run()` answered as JSON with `status`; with a key, once."""
    if key is None:
        return JSONResponse(jsonable_encoder(await run()), status_code=status)
    if not key.strip() or len(key) > MAX_KEY or not key.isprintable():
        raise DealflowError(f"the {HEADER} header must be 1 to {MAX_KEY} printable characters", code="invalid_request")
    pool = client_of(request).pool
    digest = hashlib.sha256(await request.body()).hexdigest()
    path = request.url.path
    stored = await idempotency.reserve(pool, caller.name, key, request.method, path, digest)
    if stored is not None:
        if (stored.method, stored.path, stored.body_sha256) != (request.method, path, digest):
            raise DealflowError(
                f"{HEADER} {key!r} was first used for {stored.method} {stored.path} with another body;"
                " use a new key for a new request",
                code="idempotency_key_reused",
            )
        if stored.status == idempotency.IN_PROGRESS:
            raise DealflowError(
                f"the request with {HEADER} {key!r} is still in progress; repeat it in a moment",
                code="request_in_progress",
            )
        return JSONResponse(stored.response, status_code=stored.status, headers={"Idempotent-Replayed": "true"})
    try:
        answer = jsonable_encoder(await run())
    except (Unavailable, OutcomeUnknown):
        await idempotency.release(pool, caller.name, key)  # no answer yet: a repeat must run it
        raise
    except DealflowError as exc:
        await idempotency.save(pool, caller.name, key, status_of(exc), body_of(exc))
        raise
    except BaseException:
        await idempotency.release(pool, caller.name, key)
        raise
    await idempotency.save(pool, caller.name, key, status, answer)
    return JSONResponse(answer, status_code=status)
