"""An updatable timer: one Temporal timer for the deal's earliest deadline.

In the manner of samples-python's `updatable_timer`: the owner says when it wants to wake up,
and the alarm keeps its timer while that instant stands, replacing it only when the instant
changes. So a rep's actions within a batch start and cancel no timers. The alarm does not wake
anyone itself; it sets `rang`, which the owner's `wait_condition` watches beside its other work.
"""

from __future__ import annotations

import asyncio
from datetime import datetime

from temporalio import workflow


class Alarm:
    def __init__(self) -> None:
        self._timer: asyncio.Task[None] | None = None
        self._at: datetime | None = None
        self.rang = False

    def set(self, at: datetime | None) -> None:
        """Ring at `at` (None: never); the instant already set keeps its timer."""
        if at == self._at:
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._at, self.rang = at, False
        if at is None:
            return
        wait = (at - workflow.now()).total_seconds()
        if wait <= 0:
            self.rang = True
            return
        self._timer = asyncio.create_task(self._ring(wait))

    def spend(self) -> None:
        """The ring has been answered: the next `set` starts afresh, whatever its instant."""
        self._timer, self._at, self.rang = None, None, False

    async def _ring(self, wait: float) -> None:
        await workflow.sleep(wait)
        self.rang = True
