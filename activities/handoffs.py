"""The activity that chooses the member a deal is handed to (see `store.assignments`)."""

from __future__ import annotations

import asyncpg
from temporalio import activity

from domain.activity_io import CHOOSE_OWNER, OwnerChoice, OwnerRequest
from store import assignments


class HandoffActivities:
    def __init__(self, pool: asyncpg.Pool):
        self._pool = pool

    @activity.defn(name=CHOOSE_OWNER)
    async def choose_owner(self, request: OwnerRequest) -> OwnerChoice:
        """Safe to retry: the choice made for the deal's stage visit is kept and returned again."""
        choice = await assignments.choose(self._pool, request)
        activity.logger.debug(
            "deal %s: %s to %s%s", request.deal_id, request.team.id, choice.owner, " (again)" if choice.repeated else ""
        )
        return choice
