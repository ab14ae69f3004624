"""Run an API write at most once per `Idempotency-Key`: a repeat returns the first answer
(`Idempotent-Replayed: true`) and records nothing.

Deal actions also use the key as the request id, and a start carries it in the deal's input, so
the deal itself refuses to apply a repeat even when the first answer never reached the table: a
repeat that takes over a reservation whose server died mid-request (store.idempotency's lease)
runs the request again and gets the first answer back, from the deal or its log.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import asyncpg
from fastapi import Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse

from client.api import DealflowError, OutcomeUnknown, Unavailable
from store import idempotency
from store.db import DATABASE_ERRORS
from web.admission import admission_of
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
    status: int | Callable[[Any], int] = 200,
) -> JSONResponse:
    """`run()` answered as JSON with `status` (or the status `status` gives its result); with a key, once."""

    def status_of_result(result: Any) -> int:
        return status(result) if callable(status) else status

    with admission_of(request).admit():
        return await _once(request, caller, key, run, status_of_result)


async def _once(
    request: Request,
    caller: Caller,
    key: str | None,
    run: Callable[[], Awaitable[Any]],
    status_of_result: Callable[[Any], int],
) -> JSONResponse:
    if key is None:
        result = await run()
        return JSONResponse(jsonable_encoder(result), status_code=status_of_result(result))
    if not key.strip() or len(key) > MAX_KEY or not key.isprintable():
        raise DealflowError(f"the {HEADER} header must be 1 to {MAX_KEY} printable characters", code="invalid_request")
    pool = client_of(request).pool
    digest = hashlib.sha256(await request.body()).hexdigest()
    path = request.url.path
    holder = uuid.uuid4().hex
    stored = await idempotency.reserve(pool, caller.name, key, request.method, path, digest, holder)
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
        async with _held(pool, caller.name, key, holder):
            result = await run()
            answer, code = jsonable_encoder(result), status_of_result(result)
    except (Unavailable, OutcomeUnknown):
        await _release(pool, caller.name, key, holder)  # no answer yet: a repeat must run it
        raise
    except DealflowError as exc:
        await idempotency.save(pool, caller.name, key, status_of(exc), body_of(exc))
        raise
    except BaseException:
        await _release(pool, caller.name, key, holder)
        raise
    await idempotency.save(pool, caller.name, key, code, answer)
    return JSONResponse(answer, status_code=code)


@contextlib.asynccontextmanager
async def _held(pool: asyncpg.Pool, identity: str, key: str, holder: str) -> AsyncIterator[None]:
    """Renew the reservation's lease while the request runs."""

    async def renew() -> None:
        while True:
            await asyncio.sleep(idempotency.LEASE_SECONDS / 3)
            with contextlib.suppress(*DATABASE_ERRORS):
                await idempotency.renew(pool, identity, key, holder)

    renewing = asyncio.create_task(renew())
    try:
        yield
    finally:
        renewing.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await renewing


async def _release(pool: asyncpg.Pool, identity: str, key: str, holder: str) -> None:
    """Release the key for a repeat; with the database down, its lease runs out instead."""
    with contextlib.suppress(*DATABASE_ERRORS):
        await idempotency.release(pool, identity, key, holder)
