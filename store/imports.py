"""The record of CRM imports: each run and each deal it brought over (migrations 0016, 0019, 0022)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from store import history_load
from store.visits import Conn


@dataclass
class RunRecord:
    """What a run says of itself when it ends; set `counts` before the end."""

    import_id: str
    counts: dict[str, Any] = field(default_factory=dict)


@asynccontextmanager
async def running(
    pool: asyncpg.Pool, import_id: str, *, source: str, process: str, version: str, files: list[dict[str, str]], by: str
) -> AsyncIterator[RunRecord]:
    """Record a run for as long as it runs: begun, then finished, or failed with its error (an
    exception, a cancellation, an interrupt). The session held meanwhile is how a run killed
    outright shows as killed (migration 0022): it ends with the process."""
    await mark_killed(pool)
    record = RunRecord(import_id)
    async with pool.acquire() as held:
        await held.execute(
            "INSERT INTO imports (import_id, source, process, version, files, started_by, status, backend_pid)"
            " VALUES ($1, $2, $3, $4, $5, $6, 'running', pg_backend_pid())",
            import_id,
            source,
            process,
            version,
            json.dumps(files),
            by,
        )
        try:
            yield record
        except BaseException as exc:
            await asyncio.shield(_end(pool, import_id, "failed", record.counts, f"{type(exc).__name__}: {exc}"))
            raise
        await _end(pool, import_id, "finished", record.counts, None)


async def _end(pool: asyncpg.Pool, import_id: str, status: str, counts: dict[str, Any], error: str | None) -> None:
    await pool.execute(
        "UPDATE imports SET finished_at = now(), status = $2, counts = $3, error = $4 WHERE import_id = $1",
        import_id,
        status,
        json.dumps(counts),
        error,
    )


async def mark_killed(pool: asyncpg.Pool) -> int:
    """Runs still marked running whose session has ended: their process was killed."""
    done = await pool.execute(
        "UPDATE imports i SET status = 'killed', error = 'the import stopped without finishing (its process ended)'"
        " WHERE status = 'running' AND NOT EXISTS (SELECT 1 FROM pg_stat_activity a"
        " WHERE a.pid = i.backend_pid AND a.backend_start <= i.started_at)"
    )
    return int(done.split()[-1])


async def runs(pool: asyncpg.Pool, limit: int = 20) -> list[dict[str, Any]]:
    """The latest runs, newest first, with how each ended (a killed one found as such first)."""
    await mark_killed(pool)
    rows = await pool.fetch(
        "SELECT import_id, source, process, version, files, started_by, started_at, finished_at, status, error,"
        " counts FROM imports ORDER BY started_at DESC LIMIT $1",
        limit,
    )
    return [dict(r) | {"counts": json.loads(r["counts"]), "files": json.loads(r["files"])} for r in rows]


async def existing_deals(pool: asyncpg.Pool, deal_ids: list[str]) -> set[str]:
    """Of these deal ids, those a deal here already holds (imported or not)."""
    rows = await pool.fetch("SELECT deal_id FROM deals WHERE deal_id = ANY($1::text[])", deal_ids)
    return {r["deal_id"] for r in rows}


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


async def record_open(pool: asyncpg.Pool, mark: Mark) -> None:
    """Mark an open deal as imported once its workflow has started; a mark already there (an
    earlier run's) stays as it is."""
    await pool.execute(
        f"INSERT INTO imported_deals ({', '.join(IMPORTED_COLUMNS)})"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (source, crm_id) DO NOTHING",
        *mark,
    )


async def record_closed(pool: asyncpg.Pool, rows: history_load.Rows, marks: list[Mark]) -> None:
    """Closed deals' histories, their projections and their import marks, in one transaction: a
    stop loses the batch whole or keeps it whole."""
    async with pool.acquire() as conn, conn.transaction():
        await history_load.load_rows(conn, rows)
        await record(conn, marks)
