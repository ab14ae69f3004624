"""Browser sessions as rows: made at sign-in, seen on each request, ended at sign-out.

The cookie holds the session id; the table holds only its SHA-256, so a reader of the database
cannot take over a session. Every instant is the caller's (`now`), so a test can move the clock.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

import asyncpg
from pydantic import BaseModel

# how stale last_seen_at may be before a request writes it again: one write a minute per session,
# not one per request, at the price of an idle limit that is exact to the minute
TOUCH_EVERY = timedelta(seconds=60)


class SessionRecord(BaseModel):
    identity: str
    token_id: str | None
    created_at: datetime
    expires_at: datetime
    last_seen_at: datetime
    ended_at: datetime | None
    ended_because: str | None


def _hash(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


_COLUMNS = "identity, token_id, created_at, expires_at, last_seen_at, ended_at, ended_because"


async def create(pool: asyncpg.Pool, identity: str, token_id: str | None, *, now: datetime, lifetime: timedelta) -> str:
    """A new session; its id, for the cookie (it is stored only as a hash)."""
    session_id = secrets.token_urlsafe(32)
    await pool.execute(
        "INSERT INTO web_sessions (session_hash, identity, token_id, created_at, expires_at, last_seen_at)"
        " VALUES ($1, $2, $3, $4, $5, $4)",
        _hash(session_id),
        identity,
        token_id,
        now,
        now + lifetime,
    )
    return session_id


async def get(pool: asyncpg.Pool, session_id: str) -> SessionRecord | None:
    row = await pool.fetchrow(f"SELECT {_COLUMNS} FROM web_sessions WHERE session_hash = $1", _hash(session_id))
    return None if row is None else SessionRecord(**dict(row))


async def touch(pool: asyncpg.Pool, session_id: str, *, now: datetime) -> None:
    """Note a request in a live session (at most once per TOUCH_EVERY)."""
    await pool.execute(
        "UPDATE web_sessions SET last_seen_at = $2 WHERE session_hash = $1 AND ended_at IS NULL AND last_seen_at <= $3",
        _hash(session_id),
        now,
        now - TOUCH_EVERY,
    )


async def end(pool: asyncpg.Pool, session_id: str, *, now: datetime, because: str) -> None:
    """End a session for good; ending one already ended keeps its first reason."""
    await pool.execute(
        "UPDATE web_sessions SET ended_at = $2, ended_because = $3 WHERE session_hash = $1 AND ended_at IS NULL",
        _hash(session_id),
        now,
        because,
    )
