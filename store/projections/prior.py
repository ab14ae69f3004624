"""What the read models hold of deals before their new events, read once for all of them.

A fresh deal (its batch starts the log) holds nothing, so a bulk load of whole histories reads
nothing back. A deal already logged is read in one query with every other deal of the call:
what the aggregates hold of it and, when a new event is one they are computed from, its visits.
Appends of one deal are serialised by the log's lock, so what is read here stands until commit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from domain.events import DealEvent
from store.aggregates.figures import CORE, RELEVANT, TOUCHING
from store.aggregates.groups import GROUP_COLUMNS, Group, Held
from store.projections.base import Change, DealBatch
from store.visits import VISIT_FIELDS, Conn, DealVisits, Visit, advance

_READ = f"""
SELECT d.deal_id, s.gid, g.rollup, s.started_at, s.value, s.touches, s.cadence, s.last_at,
       {", ".join(f"g.{c}" for c in GROUP_COLUMNS)}, {", ".join(f"v.{f} AS v_{f}" for f in VISIT_FIELDS)}
FROM unnest($1::text[], $2::bool[]) AS d(deal_id, with_visits)
LEFT JOIN deal_metric_state s ON s.deal_id = d.deal_id
LEFT JOIN metric_groups g ON g.gid = s.gid
LEFT JOIN stage_visits v ON v.deal_id = d.deal_id AND d.with_visits
ORDER BY d.deal_id, v.seq
"""


def counted(new: Sequence[DealEvent]) -> bool:
    """Whether any new event counts in a figure or marks a visit (else neither has anything to do)."""
    return any(isinstance(e, RELEVANT) for e in new)


def needs_visits(new: Sequence[DealEvent]) -> bool:
    """Whether the new events change visits or figures computed from them (not counts alone)."""
    return any(isinstance(e, CORE + TOUCHING) for e in new)


async def changes(conn: Conn, batches: Sequence[DealBatch]) -> list[Change]:
    """Each batch with what it goes on from, and the visits its new events lead to."""
    unread = [b for b in batches if not b.fresh and counted(b.new)]
    held: dict[str, Held] = {}
    known: dict[str, list[Visit]] = {}
    if unread:
        rows = await conn.fetch(_READ, [b.deal_id for b in unread], [needs_visits(b.new) for b in unread])
        for r in rows:
            if r["gid"] is not None and r["deal_id"] not in held:
                held[r["deal_id"]] = Held(
                    gid=r["gid"],
                    rollup=r["rollup"],
                    group=Group(*(r[c] for c in GROUP_COLUMNS)),
                    started_at=r["started_at"],
                    value=r["value"],
                    touches=r["touches"],
                    cadence=r["cadence"],
                    last_at=r["last_at"],
                )
            if r["v_seq"] is not None:
                known.setdefault(r["deal_id"], []).append(Visit(**{f: r[f"v_{f}"] for f in VISIT_FIELDS}))
    out = []
    for b in batches:
        change = Change(b, held=held.get(b.deal_id))
        if needs_visits(b.new):
            visits = DealVisits(known.get(b.deal_id, []))
            change.visits_before = [replace(v) for v in visits.visits]  # advance changes visits in place
            change.visits_changed = advance(visits, b.new)
            change.visits_after = visits.visits
        out.append(change)
    return out
