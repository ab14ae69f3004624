"""Reading the current-state projection: one row per deal, kept by the event-log appends."""

from __future__ import annotations

from datetime import datetime

import asyncpg
from pydantic import BaseModel


class DealRow(BaseModel):
    deal_id: str
    process: str
    version: str
    owner: str
    value: float | None
    status: str
    stage: str | None
    stage_entered_at: datetime | None
    started_at: datetime | None
    ended_at: datetime | None
    last_seq: int
    touches: int


async def list_deals(
    pool: asyncpg.Pool,
    *,
    stage: str | None = None,
    owner: str | None = None,
    process: str | None = None,
    status: str | None = None,
    limit: int = 1000,
) -> list[DealRow]:
    rows = await pool.fetch(
        "SELECT deal_id, process, version, owner, value, status, stage, stage_entered_at, started_at,"
        " ended_at, last_seq, touches FROM deals"
        " WHERE ($1::text IS NULL OR stage = $1) AND ($2::text IS NULL OR owner = $2)"
        " AND ($3::text IS NULL OR process = $3) AND ($4::text IS NULL OR status = $4)"
        " ORDER BY deal_id LIMIT $5",
        stage,
        owner,
        process,
        status,
        limit,
    )
    return [DealRow(**dict(r)) for r in rows]


async def running_on(pool: asyncpg.Pool, process: str, version: str) -> list[DealRow]:
    """Deals of a version whose workflow still runs: open, or won and in a post-sale stage."""
    rows = await pool.fetch(
        "SELECT deal_id, process, version, owner, value, status, stage, stage_entered_at, started_at,"
        " ended_at, last_seq, touches FROM deals"
        " WHERE process = $1 AND version = $2 AND (status = 'open' OR (status = 'won' AND stage IS NOT NULL))"
        " ORDER BY deal_id",
        process,
        version,
    )
    return [DealRow(**dict(r)) for r in rows]
