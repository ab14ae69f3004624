"""A deal's log rows exactly as stored (payload text and hashes, not decoded events): what an
audit checks the hash chain of and exports."""

from __future__ import annotations

import asyncpg


async def rows(pool: asyncpg.Pool, deal_id: str) -> list[asyncpg.Record]:
    return await pool.fetch(
        "SELECT seq, payload::text AS payload, prev_hash, hash FROM deal_events WHERE deal_id = $1 ORDER BY seq",
        deal_id,
    )
