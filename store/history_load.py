"""Whole deal histories written to the log in bulk: hash-chained rows and the projections they
imply (the deal's row, its stage visits, the metric aggregates), by COPY in the caller's
transaction.

For deals whose every event is already known and that no workflow runs: closed deals brought
over from a CRM, and the benchmarks' generated deals. Each deal's chain starts at genesis, as any
deal's does, so `audit verify` checks these rows as it checks the rest.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from domain.activity_io import DealSnapshot
from domain.events import DealEvent, DealStarted
from domain.state import fold
from store import aggregates
from store.deals import DEAL_COLUMNS
from store.event_log import GENESIS, LOG_COLUMNS, canonical, chained
from store.visits import VISIT_COLUMNS, Conn, DealVisits, advance, visit_records


@dataclass(frozen=True)
class History:
    deal_id: str
    process: str
    version: str
    events: Sequence[DealEvent]  # from seq 1, in order


def rows(history: History) -> tuple[list[tuple[object, ...]], tuple[object, ...], list[tuple[object, ...]]]:
    """The log rows, the deal's projection row and its visit rows."""
    events = history.events
    payloads = [canonical(e) for e in events]
    log: list[tuple[object, ...]] = [
        (
            history.deal_id,
            e.seq,
            e.type,
            e.at,
            e.actor,
            e.stage,
            e.request_id,
            history.process,
            history.version,
            payload,
            prev,
            digest,
        )
        for e, payload, (prev, digest) in zip(events, payloads, chained(GENESIS, payloads), strict=True)
    ]
    s = DealSnapshot.of(fold(events))
    started = next(e for e in events if isinstance(e, DealStarted))
    deal: tuple[object, ...] = (
        s.deal_id,
        s.process,
        s.version,
        s.owner,
        s.value,
        s.status,
        s.stage,
        s.stage_entered_at,
        s.started_at,
        s.ended_at,
        s.last_seq,
        s.touches,
        started.owner,
        started.version,
    )
    return log, deal, visit_records(history.deal_id, history.process, advance(DealVisits(), events))


@dataclass(frozen=True)
class Rows:
    """What histories write: the log's rows, the deals' rows and their visits' rows."""

    log: list[tuple[object, ...]]
    deals: list[tuple[object, ...]]
    visits: list[tuple[object, ...]]

    def without(self, deal_ids: set[str]) -> Rows:
        return Rows(*([r for r in part if r[0] not in deal_ids] for part in (self.log, self.deals, self.visits)))

    def heads(self) -> dict[str, tuple[int, str]]:
        """Each deal's number of events and the hash that ends its chain (rows are in seq order)."""
        out: dict[str, tuple[int, str]] = {}
        for row in self.log:
            deal_id, seq, digest = str(row[0]), int(row[1]), str(row[-1])  # type: ignore[call-overload]
            out[deal_id] = (seq, digest)
        return out


def rows_of(histories: Sequence[History]) -> Rows:
    out = Rows([], [], [])
    for h in histories:
        log, deal, visits = rows(h)
        out.log.extend(log)
        out.deals.append(deal)
        out.visits.extend(visits)
    return out


async def load_rows(conn: Conn, written: Rows) -> int:
    """COPY the rows into the log and the projections; returns the events written."""
    await conn.copy_records_to_table("deal_events", records=written.log, columns=LOG_COLUMNS)
    await conn.copy_records_to_table("deals", records=written.deals, columns=DEAL_COLUMNS)
    await conn.copy_records_to_table("stage_visits", records=written.visits, columns=VISIT_COLUMNS)
    # and the metric aggregates, from the rows just written, as the migration that adds them does
    await aggregates.add_logged(conn, [str(d[0]) for d in written.deals])
    return len(written.log)


async def load(conn: Conn, histories: Sequence[History]) -> int:
    """COPY the histories into the log and the projections; returns the events written."""
    return await load_rows(conn, rows_of(histories))
