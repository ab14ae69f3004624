"""The first answer to each Idempotency-Key, per identity (the HTTP API's repeat protection).

A key is reserved before its request runs, so two copies of one request sent at once cannot both
run: the second is told the first is still in progress.
"""

from __future__ import annotations

import json
from typing import Any

import asyncpg
from pydantic import BaseModel

IN_PROGRESS = 0


class StoredRequest(BaseModel):
    method: str
    path: str
    body_sha256: str
    status: int  # IN_PROGRESS until the answer is saved
    response: Any


async def reserve(
    pool: asyncpg.Pool, identity: str, key: str, method: str, path: str, body_sha256: str
) -> StoredRequest | None:
    """Reserve `key` for this request; None when reserved now, else what the key already holds."""
    row = await pool.fetchrow(
        "INSERT INTO api_requests (identity, key, method, path, body_sha256, status, response)"
        " VALUES ($1, $2, $3, $4, $5, $6, 'null'::jsonb) ON CONFLICT (identity, key) DO NOTHING RETURNING key",
        identity,
        key,
        method,
        path,
        body_sha256,
        IN_PROGRESS,
    )
    if row is not None:
        return None
    found = await pool.fetchrow(
        "SELECT method, path, body_sha256, status, response::text AS response FROM api_requests"
        " WHERE identity = $1 AND key = $2",
        identity,
        key,
    )
    if found is None:  # released between the two statements: the caller may simply try again
        return StoredRequest(method=method, path=path, body_sha256=body_sha256, status=IN_PROGRESS, response=None)
    return StoredRequest(**(dict(found) | {"response": json.loads(found["response"])}))


async def save(pool: asyncpg.Pool, identity: str, key: str, status: int, response: Any) -> None:
    await pool.execute(
        "UPDATE api_requests SET status = $3, response = $4::jsonb WHERE identity = $1 AND key = $2",
        identity,
        key,
        status,
        json.dumps(response),
    )


async def release(pool: asyncpg.Pool, identity: str, key: str) -> None:
    """Forget a reservation whose request did not get an answer, so that a repeat runs it."""
    await pool.execute(
        "DELETE FROM api_requests WHERE identity = $1 AND key = $2 AND status = $3", identity, key, IN_PROGRESS
    )
