"""The read models kept from the event log, behind one interface (`base.Projection`).

`apply` is the one way they are kept: the live append (`store.event_log.append`: one deal's
events new to the log) and the bulk load of whole histories (`store.history_load`: imports) both
call it, in the transaction that writes the log rows. So an imported deal's rows are the rows the
same events would have made had they been appended live, and a figure is computed in one place.

The read models, in the order they are written:
- `deal_rows`: the current state, one row per deal (`deals`), with the board's marks;
- `stage_visits`: one row per stage visit (`stage_visits`);
- `metric_aggregates`: the figures, summed per group of deals (`metric_*`, `deal_metric_state`);
  last, because its rows are shared by many deals and stay locked until the commit.

The statements a call makes, whatever the number of deals in it: one read of what the deals
already hold (none when every deal is fresh, or no new event counts in a figure), one write per
read model that has something to write, and the aggregates' lookups of layouts and groups (one
each when a deal's group is not the one it was held in, plus one per group that is new).
"""

from __future__ import annotations

from collections.abc import Sequence

from store.projections import deal_rows, metric_aggregates, prior, stage_visits
from store.projections.base import Change, DealBatch, Projection
from store.visits import Conn

PROJECTIONS: tuple[Projection, ...] = (deal_rows.PROJECTION, stage_visits.PROJECTION, metric_aggregates.PROJECTION)

__all__ = ["PROJECTIONS", "Change", "DealBatch", "Projection", "apply"]


async def apply(conn: Conn, batches: Sequence[DealBatch], *, models: Sequence[Projection] = PROJECTIONS) -> None:
    """Bring the read models up to the batches' events, inside the caller's transaction.

    Each batch holds a deal's events that are new to the log (in order; a batch of a deal the log
    held nothing of starts at seq 1), and a deal appears once in a call. `models` is every read
    model but for a loader that fills some another way (the metrics benchmark sums its generated
    deals' aggregates with `store.aggregates.Backfill`).
    """
    batches = [b for b in batches if b.new]
    if len({b.deal_id for b in batches}) != len(batches):
        raise ValueError("a deal appears in more than one batch of one call")
    if not batches:
        return
    changes = await prior.changes(conn, batches)
    for projection in models:
        mine = [c for c in changes if any(isinstance(e, projection.reads) for e in c.batch.new)]
        if mine:
            await projection.apply(conn, mine)
