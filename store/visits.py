"""The stage-visit projection: one row per time a deal entered a stage, kept with the event log.

Metrics are about visits (how long a deal stayed, how it left, whether it came back), and deriving
visits from raw events means ordering every event of every deal with window functions on each
query. This projection is maintained by the same transaction that appends the events, only for
the events that were new, so it holds each event's effect exactly once. A visit's exit fields
carry their instant, so the metrics can still look at the visit as it stood at any earlier time.

`advance` is a pure function of the deal's open visit and the new events, shared by the log
append, the rebuild after a schema migration and the benchmark loader.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

import asyncpg

from domain.events import (
    DealClosed,
    DealEvent,
    DealLost,
    DealWon,
    MigratedToVersion,
    StageCompleted,
    StageEntered,
    StageSkipped,
    decode_stored,
)

Conn = asyncpg.Connection | asyncpg.pool.PoolConnectionProxy

_MARKS = (StageEntered, StageCompleted, StageSkipped, DealWon, DealLost, DealClosed, MigratedToVersion)


@dataclass
class Visit:
    seq: int  # the StageEntered that began it
    stage: str
    via: str
    entered_at: datetime
    visit_no: int  # 1 for the deal's first visit of this stage
    completed_at: datetime | None = None
    exit_type: str | None = None  # how it ended: the next entry's via, or won / lost / closed
    exit_at: datetime | None = None
    exit_seq: int | None = None
    lost_reason: str | None = None
    skipped: list[str] | None = None
    # Is this the deal's first visit of the stage to be completed / left backwards / left for the
    # next stage? A first occurrence is also the earliest, so at any instant "the first one has
    # happened" is "some one has happened": the metrics count deals without grouping by deal.
    first_completion: bool = False
    first_back: bool = False
    first_next: bool = False
    # Seconds spent in the stage on earlier visits (all finished before this one began), and when
    # the next visit of the stage began: a deal's cumulative time in a stage is read off its last
    # visit as of any instant, again without grouping.
    cum_before: float = 0.0
    next_entry_at: datetime | None = None


@dataclass
class DealVisits:
    """A deal's visits so far, in order: what `advance` goes on from."""

    visits: list[Visit] = field(default_factory=list)

    @property
    def open_visit(self) -> Visit | None:
        last = self.visits[-1] if self.visits else None
        return last if last is not None and last.exit_type is None else None


def advance(known: DealVisits, events: Iterable[DealEvent]) -> list[Visit]:
    """Apply new events (in order); return the visits that were changed or begun."""
    before = {v.seq: _fields(v) for v in known.visits}
    for e in events:
        current = known.open_visit
        if isinstance(e, StageEntered) and e.stage is not None:
            if current is not None:
                _close(current, e.via, e)
            known.visits.append(Visit(seq=e.seq, stage=e.stage, via=e.via, entered_at=e.at, visit_no=1))
        elif isinstance(e, MigratedToVersion):
            # the deal's whole history now reads in the new version's stage ids
            for v in known.visits:
                v.stage = e.stage_map.get(v.stage, v.stage)
        elif current is None:
            continue
        elif isinstance(e, StageCompleted) and e.stage == current.stage and current.completed_at is None:
            current.completed_at = e.at
        elif isinstance(e, StageSkipped):
            current.skipped = list(e.skipped)
        elif isinstance(e, DealWon | DealLost | DealClosed):
            kind = {"DealWon": "won", "DealLost": "lost", "DealClosed": "closed"}[e.type]
            if isinstance(e, DealLost):
                current.lost_reason = e.reason
            _close(current, kind, e)
    _derive(known.visits)
    return [v for v in known.visits if before.get(v.seq) != _fields(v)]


def _fields(visit: Visit) -> tuple[object, ...]:
    """A visit's values, to tell later whether it changed. Shallow: `advance` replaces a visit's
    `skipped` list rather than changing it in place (dataclasses.astuple deep-copies every value,
    which costs more than the rest of `advance` together)."""
    return tuple(vars(visit).values())


def _derive(visits: list[Visit]) -> None:
    """The fields computed from the others: visit numbers, first occurrences, earlier time."""
    last: dict[str, Visit] = {}
    seen: set[tuple[str, str]] = set()

    def first(stage: str, kind: str, happened: bool) -> bool:
        if not happened or (stage, kind) in seen:
            return False
        seen.add((stage, kind))
        return True

    for v in visits:
        earlier = last.get(v.stage)
        v.visit_no, v.cum_before, v.next_entry_at = 1, 0.0, None
        if earlier is not None:
            earlier.next_entry_at = v.entered_at
            v.visit_no = earlier.visit_no + 1
            spent = (earlier.exit_at - earlier.entered_at).total_seconds() if earlier.exit_at else 0.0
            v.cum_before = earlier.cum_before + spent
        v.first_completion = first(v.stage, "completion", v.completed_at is not None)
        v.first_back = first(v.stage, "back", v.exit_type == "back")
        v.first_next = first(v.stage, "next", v.exit_type == "next")
        last[v.stage] = v


def _close(visit: Visit, kind: str, e: DealEvent) -> None:
    visit.exit_type, visit.exit_at, visit.exit_seq = kind, e.at, e.seq


VISIT_COLUMNS = [
    "deal_id",
    "process",
    "seq",
    "stage",
    "via",
    "entered_at",
    "visit_no",
    "completed_at",
    "exit_type",
    "exit_at",
    "exit_seq",
    "lost_reason",
    "skipped",
    "first_completion",
    "first_back",
    "first_next",
    "cum_before",
    "next_entry_at",
]
_FIELDS = VISIT_COLUMNS[2:]
VISIT_FIELDS = tuple(_FIELDS)  # a Visit's fields, as stage_visits' columns
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
SELECT $1, $2, {_SELECT}
FROM unnest({", ".join(f"${i + 3}::{t}[]" for i, t in enumerate(_TYPES))}) AS v({", ".join(_FIELDS)})
ON CONFLICT (deal_id, seq) DO UPDATE SET
    {", ".join(f"{f} = EXCLUDED.{f}" for f in _FIELDS if f != "seq")}
"""


async def known_visits(conn: Conn, deal_id: str) -> DealVisits:
    rows = await conn.fetch(f"SELECT {', '.join(_FIELDS)} FROM stage_visits WHERE deal_id = $1 ORDER BY seq", deal_id)
    return DealVisits([Visit(**dict(r)) for r in rows])


def visit_records(deal_id: str, process: str, visits: Sequence[Visit]) -> list[tuple[object, ...]]:
    """Rows for `COPY stage_visits` (the rebuild and the benchmark loader)."""
    return [(deal_id, process, *(getattr(v, f) for f in _FIELDS)) for v in visits]


@dataclass
class VisitChange:
    """A deal's visits before and after an append (for the aggregates, `store.aggregates`)."""

    before: list[Visit]
    after: list[Visit]


async def project(
    conn: Conn, deal_id: str, process: str, new_events: Sequence[DealEvent], *, known: DealVisits | None = None
) -> VisitChange | None:
    """Fold the deal's newly appended events into its visits (inside the append's transaction).

    `known` is the deal's visits when the caller has read them already (`store.aggregates.read`);
    otherwise they are read for events a visit records. Returns the visits before and after, or
    None when there was nothing to read.
    """
    if known is None:
        if not any(isinstance(e, _MARKS) for e in new_events):
            return None  # touches, reminders, proposals: nothing a visit records
        known = await known_visits(conn, deal_id)
    before = [replace(v) for v in known.visits]  # advance changes visits in place
    visits = advance(known, new_events)
    if visits:
        columns = [[getattr(v, f) for v in visits] for f in _FIELDS]
        columns[_FIELDS.index("skipped")] = [",".join(v.skipped) if v.skipped else "" for v in visits]
        await conn.execute(_UPSERT, deal_id, process, *columns)
    return VisitChange(before, known.visits)


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
