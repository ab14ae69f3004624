"""The one composition root: the database pool, the Temporal client and the access
configuration a process of the application layer runs on are built here, and only here.

`DealflowClient.connect` calls `open_parts`, and the CLI, `dealflow serve` (and `dealflow dev`)
and the web app all connect through it; a test or a benchmark that already has a pool and a
Temporal client builds the `DealflowClient` (a `Context`) from them directly.
"""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg
from temporalio.client import Client

from app.access import PolicySource
from app.database import open_pool
from app.errors import DealflowError, Unavailable
from worker.connect import connect_temporal, tls_config
from worker.settings import Settings, SettingsError


@dataclass(frozen=True)
class Parts:
    temporal: Client
    pool: asyncpg.Pool
    settings: Settings
    access: PolicySource


async def open_parts(settings: Settings | None = None) -> Parts:
    """Everything a process of the application needs, connected (the caller closes the pool).

    Settings and the access configuration are checked first (a missing certificate or a bad
    access file is named before anything connects); then the pool is opened and migrated, then
    Temporal is reached.
    """
    try:
        settings = settings or Settings.resolve()
        tls_config(settings)
        policy = PolicySource.load()
    except SettingsError as exc:
        raise DealflowError(str(exc), code="bad_settings") from None
    pool = await open_pool(settings)
    try:
        temporal = await connect_temporal(settings)
    except ConnectionError as exc:
        await pool.close()
        raise Unavailable(str(exc)) from None
    except BaseException:
        await pool.close()
        raise
    return Parts(temporal, pool, settings, policy)
