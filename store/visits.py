"""Stage visits: one per time a deal entered a stage, as `stage_visits` keeps them.

Metrics are about visits (how long a deal stayed, how it left, whether it came back), and deriving
visits from raw events means ordering every event of every deal with window functions on each
query; so they are kept as a read model (`store.projections.stage_visits`). A visit's exit fields
carry their instant, so the metrics can still look at the visit as it stood at any earlier time.

`advance` is a pure function of the deal's visits so far and the new events: the one way visits
are computed, whether the events are appended live, loaded in bulk or rebuilt after a migration.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
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


def visit_records(deal_id: str, process: str, visits: Sequence[Visit]) -> list[tuple[object, ...]]:
    """Rows for `COPY stage_visits` (the rebuild after the migration that adds the table)."""
    return [(deal_id, process, *(getattr(v, f) for f in _FIELDS)) for v in visits]
