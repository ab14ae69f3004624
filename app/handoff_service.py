"""The handoff figures a manager reads: time lost between teams. The CLI asks here, and so can
the web app and the report."""

from __future__ import annotations

from analytics.handoff_verdicts import HandoffMetrics
from app.context import Context
from store.handoffs import handoffs


async def handoff_metrics(c: Context, process: str | None = None) -> HandoffMetrics:
    return await handoffs(c.pool, process)
