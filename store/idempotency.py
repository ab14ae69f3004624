"""The first answer to each Idempotency-Key, per identity (the HTTP API's repeat protection).

A key is reserved before its request runs, so two copies of one request sent at once cannot both
run: the second is told the first is still in progress. The reservation is a lease that its
holder renews while the request runs (`renew`); one whose lease has run out is no longer held
(its server died, or lost the database around its answer) and the next repeat takes it over.
"""

from __future__ import annotations

import json
from typing import Any

import asyncpg
from pydantic import BaseModel

IN_PROGRESS = 0
# how long a reservation stays held without being renewed; its holder renews it every third of this
LEASE_SECONDS = 10.0


class StoredRequest(BaseModel):
    method: str
    path: str
    body_sha256: str
    status: int  # IN_PROGRESS until the answer is saved
    response: Any


async def reserve(
    pool: asyncpg.Pool,
    identity: str,
    key: str,
    method: str,
    path: str,
    body_sha256: str,
    holder: str,
    *,
    lease: float = LEASE_SECONDS,
) -> StoredRequest | None:
    """Reserve `key` for this request, held by `holder`; None when reserved now (or taken over
    from a holder whose lease ran out, for the same request), else what the key already holds."""
    row = await pool.fetchrow(
        "INSERT INTO api_requests (identity, key, method, path, body_sha256, status, response, holder, lease_until)"
        " VALUES ($1, $2, $3, $4, $5, $6, 'null'::jsonb, $7, now() + make_interval(secs => $8))"
        " ON CONFLICT (identity, key) DO UPDATE SET holder = EXCLUDED.holder, lease_until = EXCLUDED.lease_until"
        " WHERE api_requests.status = $6 AND (api_requests.lease_until IS NULL OR api_requests.lease_until < now())"
        " AND (api_requests.method, api_requests.path, api_requests.body_sha256) = ($3, $4, $5)"
        " RETURNING key",
        identity,
        key,
        method,
        path,
        body_sha256,
        IN_PROGRESS,
        holder,
        lease,
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


async def renew(pool: asyncpg.Pool, identity: str, key: str, holder: str, *, lease: float = LEASE_SECONDS) -> bool:
    """Hold the reservation a while longer; False when another holder has taken it over."""
    done = await pool.execute(
        "UPDATE api_requests SET lease_until = now() + make_interval(secs => $4)"
        " WHERE identity = $1 AND key = $2 AND holder = $3 AND status = $5",
        identity,
        key,
        holder,
        lease,
        IN_PROGRESS,
    )
    return bool(done == "UPDATE 1")


async def save(pool: asyncpg.Pool, identity: str, key: str, status: int, response: Any) -> None:
    """The request's answer, kept for its repeats (whichever holder answers first keeps it: a
    request run twice under one key answers the same, the deal having recorded it once)."""
    await pool.execute(
        "UPDATE api_requests SET status = $3, response = $4::jsonb, lease_until = NULL"
        " WHERE identity = $1 AND key = $2 AND status = $5",
        identity,
        key,
        status,
        json.dumps(response),
        IN_PROGRESS,
    )


async def release(pool: asyncpg.Pool, identity: str, key: str, holder: str) -> None:
    """Forget a reservation whose request did not get an answer, so that a repeat runs it."""
    await pool.execute(
        "DELETE FROM api_requests WHERE identity = $1 AND key = $2 AND status = $3 AND holder = $4",
        identity,
        key,
        IN_PROGRESS,
        holder,
    )
