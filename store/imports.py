"""The record of CRM imports: each run and each deal it brought over (migration 0016)."""

from __future__ import annotations

import json
from typing import Any

import asyncpg

from store.visits import Conn


async def begin(
    pool: asyncpg.Pool, import_id: str, *, source: str, process: str, version: str, files: list[dict[str, str]], by: str
) -> None:
    await pool.execute(
        "INSERT INTO imports (import_id, source, process, version, files, started_by) VALUES ($1, $2, $3, $4, $5, $6)",
        import_id,
        source,
        process,
        version,
        json.dumps(files),
        by,
    )


async def finish(pool: asyncpg.Pool, import_id: str, counts: dict[str, Any]) -> None:
    await pool.execute(
        "UPDATE imports SET finished_at = now(), counts = $2 WHERE import_id = $1", import_id, json.dumps(counts)
    )


async def already(pool: asyncpg.Pool, source: str, crm_ids: list[str]) -> dict[str, str]:
    """Of these CRM ids, those an earlier import brought over, with their deal ids."""
    rows = await pool.fetch(
        "SELECT crm_id, deal_id FROM imported_deals WHERE source = $1 AND crm_id = ANY($2::text[])", source, crm_ids
    )
    return {r["crm_id"]: r["deal_id"] for r in rows}


IMPORTED_COLUMNS = [
    "source",
    "crm_id",
    "deal_id",
    "import_id",
    "kind",
    "file",
    "sha256",
    "row_number",
    "events",
    "head_hash",
]
Mark = tuple[str, str, str, str, str, str, str, int, int | None, str | None]


async def record(conn: Conn, rows: list[Mark]) -> None:
    """Mark deals as imported, in the transaction that wrote them (closed deals) or right after
    their workflow started (open ones)."""
    await conn.copy_records_to_table("imported_deals", records=rows, columns=IMPORTED_COLUMNS)


async def provenance(pool: asyncpg.Pool, deal_id: str) -> dict[str, Any] | None:
    row = await pool.fetchrow(
        "SELECT d.source, d.crm_id, d.kind, d.file, d.sha256, d.row_number, d.events, d.head_hash, d.at,"
        " i.import_id, i.started_by"
        " FROM imported_deals d JOIN imports i USING (import_id) WHERE d.deal_id = $1",
        deal_id,
    )
    return None if row is None else dict(row)
