"""What every service of the application layer is given, and all it may reach: the database
pool (and the watch on the log it waits through), the Temporal client (and the deal workflows
through it), the settings, the access configuration and the definitions read so far.

Services take a `Context` explicitly as their first argument instead of the whole client, so
what a use case depends on is in its signature; the composition root (`app/composition.py`)
builds one per process. The acting identity is an argument of each use case (the `actor`), since
one process serves many people.
"""

from __future__ import annotations

import asyncpg
from temporalio.client import Client

from app.access import AccessPolicy, PolicySource
from app.deal_workflows import DealWorkflows
from app.errors import NotFound
from app.retry import RetryCounts
from definitions.loader import PinnedDefinition
from domain.commands import LOG_FLUSH_SECONDS
from store import registry
from store.log_watch import LogWatch
from worker.settings import Settings


class Context:
    def __init__(
        self,
        temporal: Client,
        pool: asyncpg.Pool,
        settings: Settings,
        access: AccessPolicy | PolicySource | None = None,
    ):
        self.temporal = temporal
        self.pool = pool
        self.settings = settings
        self._access = access
        self.retries = RetryCounts()  # requests sent again after a lost answer (app/retry.py)
        self.workflows = DealWorkflows(temporal, settings, self.retries)
        self._definitions: dict[tuple[str, str], PinnedDefinition] = {}
        self.log_watch = LogWatch(pool)  # waits for the log to reach a deal's event

    @property
    def access(self) -> AccessPolicy | None:
        """The access configuration as it is now (a file that changed is read again); None: no
        access configuration, everything allowed."""
        if isinstance(self._access, PolicySource):
            return self._access.current()
        return self._access

    @property
    def log_flush_seconds(self) -> float:
        """How long the deals this process starts gather events per append to the log."""
        flush = self.settings.log_flush_seconds
        return LOG_FLUSH_SECONDS if flush is None else flush

    async def definition(self, name: str, version: str | None = None) -> PinnedDefinition:
        """A deployed version (the latest when `version` is None). Versions never change once
        deployed, so each is read and parsed once per process, then kept."""
        try:
            if version is None:
                version = await registry.latest_version(self.pool, name)
            found = self._definitions.get((name, version))
            if found is None:
                found = await registry.get(self.pool, name, version)
                self._definitions[(name, version)] = found
            return found
        except registry.UnknownDefinition as exc:
            raise NotFound(str(exc), code="unknown_process") from None
