"""Browser sessions: started at sign-in, checked on every request, ended at sign-out.

A session is a row on the server (store/sessions.py), not just a signed cookie, so that signing
out ends it everywhere, even for a copy of the cookie; and a session is bound to the identity
and the token it signed in with, so a cookie naming someone else's token signs no one in, even
one signed with the server's own key. A session ends for good 12 h after sign-in (`lifetime`),
whatever happens, and lapses after `idle` without a request.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from app import token_service
from app.context import Context
from app.errors import Unauthenticated
from store import sessions


@dataclass(frozen=True)
class Lifetimes:
    lifetime: timedelta  # from sign-in, however busy the session
    idle: timedelta  # without a request


def _refused(message: str, reason: str) -> Unauthenticated:
    return Unauthenticated(f"{message}; sign in again", details={"reason": reason})


async def start(c: Context, identity: str, token_id: str | None, *, now: datetime, limits: Lifetimes) -> str:
    """A new session's id (for the signed cookie)."""
    return await sessions.create(c.pool, identity, token_id, now=now, lifetime=limits.lifetime)


async def check(
    c: Context,
    session_id: str | None,
    identity: str | None,
    token_id: str | None,
    *,
    now: datetime,
    limits: Lifetimes,
) -> str:
    """The identity a session's cookie signs in now; `Unauthenticated` (with a `reason` code in
    its details) saying why not. The cookie's identity and token must be the session's own, and
    the token its identity's."""
    record = await sessions.get(c.pool, session_id) if session_id else None
    if record is None or session_id is None:
        raise _refused("this browser's session is not one this server started", "invalid")
    if record.identity != identity or record.token_id != token_id:
        await sessions.end(c.pool, session_id, now=now, because="cookie altered")
        raise _refused("this browser's session cookie was altered", "invalid")
    if record.ended_at is not None:
        raise _refused(f"this session ended at {record.ended_at:%Y-%m-%d %H:%M} UTC ({record.ended_because})", "ended")
    if now >= record.expires_at:
        raise _refused(f"this session reached its limit at {record.expires_at:%Y-%m-%d %H:%M} UTC", "expired")
    if now - record.last_seen_at >= limits.idle:
        await sessions.end(c.pool, session_id, now=now, because="idle")
        raise _refused(f"this session was idle since {record.last_seen_at:%Y-%m-%d %H:%M} UTC", "idle")
    if record.token_id is not None:
        await token_service.still_valid(c, record.token_id, record.identity)
    elif c.access is not None:
        raise _refused("this session was started with access control off", "invalid")
    await sessions.touch(c.pool, session_id, now=now)
    return record.identity


async def end(c: Context, session_id: str, *, now: datetime, because: str) -> None:
    await sessions.end(c.pool, session_id, now=now, because=because)
