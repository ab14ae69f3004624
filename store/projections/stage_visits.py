"""The stage-visit read model (`stage_visits`): one row per visit, as `store.visits` computes them.

Only the visits the new events changed or began are written, so each event's effect is held
exactly once; the rows of every deal in the call go in one statement.
"""

from __future__ import annotations

from collections.abc import Sequence

from domain.events import (
    DealClosed,
    DealEvent,
    DealLost,
    DealWon,
    EventBase,
    MigratedToVersion,
    StageCompleted,
    StageEntered,
    StageSkipped,
    decode_stored,
)
from store.projections.base import Change
from store.visits import VISIT_COLUMNS, VISIT_FIELDS, Conn, DealVisits, advance, visit_records

_FIELDS = list(VISIT_FIELDS)
_TYPES = [
    "int",
    "text",
    "text",
    "timestamptz",
    "int",
    "timestamptz",
    "text",
    "timestamptz",
    "int",
    "text",
    "text",  # skipped, comma-joined: unnest cannot take an array of arrays of different lengths
    "bool",
    "bool",
    "bool",
    "float8",
    "timestamptz",
]
_SELECT = ", ".join(
    "CASE WHEN v.skipped = '' THEN NULL ELSE string_to_array(v.skipped, ',') END" if f == "skipped" else f"v.{f}"
    for f in _FIELDS
)
_UPSERT = f"""
INSERT INTO stage_visits ({", ".join(VISIT_COLUMNS)})
SELECT v.deal_id, v.process, {_SELECT}
FROM unnest($1::text[], $2::text[], {", ".join(f"${i + 3}::{t}[]" for i, t in enumerate(_TYPES))})
     AS v(deal_id, process, {", ".join(_FIELDS)})
ON CONFLICT (deal_id, seq) DO UPDATE SET
    {", ".join(f"{f} = EXCLUDED.{f}" for f in _FIELDS if f != "seq")}
"""


class StageVisits:
    """Visits change with stage entries, completions, skips, the deal's end and a migration."""

    reads: tuple[type[EventBase], ...] = (
        StageEntered,
        StageCompleted,
        StageSkipped,
        DealWon,
        DealLost,
        DealClosed,
        MigratedToVersion,
    )

    async def apply(self, conn: Conn, changes: Sequence[Change]) -> None:
        rows = [(c.batch.deal_id, c.batch.process, v) for c in changes for v in c.visits_changed]
        if not rows:
            return
        columns: list[list[object]] = [[d for d, _, _ in rows], [p for _, p, _ in rows]]
        for f in _FIELDS:
            if f == "skipped":
                columns.append([",".join(v.skipped) if v.skipped else "" for _, _, v in rows])
            else:
                columns.append([getattr(v, f) for _, _, v in rows])
        await conn.execute(_UPSERT, *columns)


PROJECTION = StageVisits()


async def rebuild(conn: Conn) -> int:
    """Recompute every deal's visits from the log (after the migration that adds the table)."""
    await conn.execute("TRUNCATE stage_visits")
    records: list[tuple[object, ...]] = []
    written = 0
    deal: tuple[str, str] | None = None
    events: list[DealEvent] = []

    async def flush(final: bool) -> None:
        nonlocal records, written
        if deal is not None:
            records.extend(visit_records(deal[0], deal[1], advance(DealVisits(), events)))
        if records and (final or len(records) >= 5000):
            await conn.copy_records_to_table("stage_visits", records=records, columns=VISIT_COLUMNS)
            written += len(records)
            records = []

    async for r in conn.cursor("SELECT deal_id, process, payload FROM deal_events ORDER BY deal_id, seq"):
        if deal is None or r["deal_id"] != deal[0]:
            await flush(final=False)
            deal, events = (r["deal_id"], r["process"]), []
        events.append(decode_stored(r["payload"]))
    await flush(final=True)
    return written
