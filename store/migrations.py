"""Versioned schema migrations, applied in order at start-up under an advisory lock.

Each `store/migrations/NNNN_name.sql` runs once and is recorded in `schema_migrations`; all
pending ones run in one transaction, and workers starting at once serialise on the lock.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import asyncpg

from store import aggregates
from store.projections import stage_visits

# Projections that a migration adds are filled from the log by the code that maintains them,
# in the migration's transaction, so there is one way to compute them.
_AFTER = {5: stage_visits.rebuild, 13: aggregates.rebuild}

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
_LOCK_KEY = 0x6465616C666C6F77  # "dealflow"


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


def available() -> list[Migration]:
    found = []
    for path in sorted(MIGRATIONS_DIR.glob("*.sql")):
        number, _, name = path.stem.partition("_")
        found.append(Migration(int(number), name, path.read_text(encoding="utf-8")))
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise RuntimeError(f"duplicate migration numbers in {MIGRATIONS_DIR}")
    return found


async def migrate(pool: asyncpg.Pool) -> list[int]:
    """Apply the missing migrations; return the versions applied now.

    A schema already current is only read, so a read-only role (an auditor's) can start a client.
    """
    if await _current(pool):
        return []
    applied_now: list[int] = []
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", _LOCK_KEY)
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version integer PRIMARY KEY, name text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")}
        for m in available():
            if m.version in done:
                continue
            await conn.execute(m.sql)
            if m.version in _AFTER:
                await _AFTER[m.version](conn)
            await conn.execute("INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", m.version, m.name)
            applied_now.append(m.version)
    return applied_now


async def _current(pool: asyncpg.Pool) -> bool:
    async with pool.acquire() as conn:
        if await conn.fetchval("SELECT to_regclass('schema_migrations')") is None:
            return False
        done = {r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")}
    return {m.version for m in available()} <= done
