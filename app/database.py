"""The database pool the application layer reads and writes through, with the schema brought
up to date before the first request."""

from __future__ import annotations

import asyncpg

from app.errors import Unavailable
from store.db import StoreUnavailable, connect_pool
from store.migrations import migrate
from worker.settings import Settings

POOL_SIZE = 20


async def open_pool(settings: Settings) -> asyncpg.Pool:
    """A migrated pool; `Unavailable` naming where the settings came from when there is no server."""
    try:
        pool = await connect_pool(settings.database_url, max_size=POOL_SIZE)
    except StoreUnavailable as exc:
        raise Unavailable(
            f"{exc} (settings from {settings.source}; start 'dealflow dev' or set DATABASE_URL)"
        ) from None
    try:
        await migrate(pool)
    except ConnectionError as exc:
        await pool.close()
        raise Unavailable(str(exc)) from None
    except BaseException:
        await pool.close()
        raise
    return pool
