"""Refused requests, kept for auditors (a refused update leaves no trace in Temporal's history)."""

from __future__ import annotations

import logging
from datetime import datetime

import asyncpg
from pydantic import BaseModel

log = logging.getLogger("dealflow.access")


class Refusal(BaseModel):
    at: datetime
    actor: str
    role: str | None
    action: str
    target: str | None
    reason: str


async def record(
    pool: asyncpg.Pool, actor: str, role: str | None, action: str, target: str | None, reason: str
) -> None:
    """Best effort: a failure to record must not turn a clear refusal into a database error."""
    try:
        await pool.execute(
            "INSERT INTO access_refusals (actor, role, action, target, reason) VALUES ($1, $2, $3, $4, $5)",
            actor,
            role,
            action,
            target,
            reason,
        )
    except (asyncpg.PostgresError, OSError) as exc:
        log.warning("refusal of %s (%s) not recorded: %s", actor, action, exc)


async def read(pool: asyncpg.Pool, *, since: datetime | None = None, limit: int = 1000) -> list[Refusal]:
    rows = await pool.fetch(
        "SELECT at, actor, role, action, target, reason FROM access_refusals"
        " WHERE $1::timestamptz IS NULL OR at >= $1 ORDER BY at DESC, id DESC LIMIT $2",
        since,
        limit,
    )
    return [Refusal(**dict(r)) for r in rows]
