"""Connecting to PostgreSQL, with errors that say which server could not be reached and why."""

from __future__ import annotations

import re

import asyncpg

# what a query raises when the database is down, restarting or gone mid-answer (asyncpg's
# InternalClientError: the protocol broke between two messages), as against a query's own error
DATABASE_ERRORS: tuple[type[Exception], ...] = (
    OSError,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
)


class StoreUnavailable(RuntimeError):
    """The database could not be reached or refused us; nothing was written."""


def redact(url: str) -> str:
    """The URL without its password, for messages and logs."""
    return re.sub(r"(://[^:/@]+):[^@]*@", r"\1:***@", url)


async def connect_pool(url: str, *, min_size: int = 1, max_size: int = 10) -> asyncpg.Pool:
    try:
        pool = await asyncpg.create_pool(
            url,
            min_size=min_size,
            max_size=max_size,
            timeout=10,
            # the metrics build temporary tables of tens of MB; past temp_buffers they go to disk.
            # It is a ceiling, allocated only by sessions that use temporary tables.
            server_settings={"temp_buffers": "128MB"},
        )
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
        raise StoreUnavailable(f"cannot connect to PostgreSQL at {redact(url)}: {exc}") from exc
    assert pool is not None
    return pool
