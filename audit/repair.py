"""Give the log back events it lost, from Temporal's history.

The log holds what Temporal recorded as the inputs of the deal's appends, so an event missing
from it after the fact (a database restored from a backup, a failover to a replica that trailed,
a crash of a server running without durable commits) can be appended again from that record:
the same events, chained the same way, through the log's own append, which writes nothing twice
and refuses anything that differs from what is logged. Only the events after the log's last one
are filled, so the log stays a prefix of the history and nothing is rewritten.
"""

from __future__ import annotations

import asyncpg
from temporalio.client import Client

from audit.history import deal_events, deal_runs
from domain.activity_io import AppendEvents, DealSnapshot
from domain.state import fold
from store import event_log


class RepairError(RuntimeError):
    """The log cannot be filled from the history (names why)."""


async def fill(temporal: Client, pool: asyncpg.Pool, deal_id: str, *, before: int | None = None) -> int:
    """Append the events Temporal recorded for the deal that follow the log's last one (those
    before seq `before` only, when given); returns how many were appended."""
    recorded = deal_events(await deal_runs(temporal, deal_id))
    if not recorded:
        raise RepairError(f"Temporal has no history of deal {deal_id!r} to repair its log from")
    last = await event_log.last_seq(pool, deal_id)
    missing = [e for e in recorded if e.seq > last and (before is None or e.seq < before)]
    if not missing:
        return 0
    if missing[0].seq != last + 1 or [e.seq for e in missing] != list(range(last + 1, missing[-1].seq + 1)):
        raise RepairError(
            f"deal {deal_id!r}: the history does not hold every event after the log's last ({last}): "
            f"it has seqs {missing[0].seq}..{missing[-1].seq}"
        )
    upto = [e for e in recorded if e.seq <= missing[-1].seq]
    snapshot = DealSnapshot.of(fold(upto))
    return await event_log.append(pool, AppendEvents(deal_id=deal_id, events=missing, snapshot=snapshot))
