"""The activity that picks the definition a follow-on deal starts on."""

from __future__ import annotations

import asyncpg
from temporalio import activity
from temporalio.exceptions import ApplicationError

from definitions.experiment import assign
from domain.activity_io import PREPARE_FOLLOW_ON, FollowOnRequest, PreparedFollowOn
from store import experiments, registry


class FollowOnActivities:
    def __init__(self, pool: asyncpg.Pool):
        self._pool = pool

    @activity.defn(name=PREPARE_FOLLOW_ON)
    async def prepare_follow_on(self, request: FollowOnRequest) -> PreparedFollowOn:
        """The latest deployed version of the process, or the one its running experiment assigns,
        exactly as a deal started by a rep would get."""
        running = await experiments.running_on(self._pool, request.process)
        version = assign(running, request.deal_id) if running else None
        try:
            pinned = await registry.get(self._pool, request.process, version)
        except registry.UnknownDefinition as exc:
            raise ApplicationError(str(exc), type="UnknownProcess", non_retryable=True) from None
        return PreparedFollowOn(pinned=pinned, experiment=running.name if running else None)
