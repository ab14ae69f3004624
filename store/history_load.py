"""Whole deal histories written to the log in bulk: hash-chained rows by COPY, and the read models
they imply through the same projections as a live append (`store.projections.apply`), in the
caller's transaction.

For deals whose every event is already known and that no workflow runs: closed deals brought
over from a CRM, and the benchmarks' generated deals. Each deal's chain starts at genesis, as any
deal's does, so `audit verify` checks these rows as it checks the rest; and each deal's rows in
the read models are the ones its events would have made had they been appended live.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from domain.activity_io import DealSnapshot
from domain.events import DealEvent
from domain.state import fold
from store import projections
from store.event_log import GENESIS, LOG_COLUMNS, canonical, chained
from store.projections import DealBatch
from store.visits import Conn


@dataclass(frozen=True)
class History:
    deal_id: str
    process: str
    version: str
    events: Sequence[DealEvent]  # from seq 1, in order


def log_rows(history: History) -> list[tuple[object, ...]]:
    """The deal's log rows, chained from genesis."""
    payloads = [canonical(e) for e in history.events]
    return [
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
        for e, payload, (prev, digest) in zip(history.events, payloads, chained(GENESIS, payloads), strict=True)
    ]


def batch_of(history: History) -> DealBatch:
    """The whole history as the projections are given it: every event new, the state at its end."""
    snapshot = DealSnapshot.of(fold(history.events))
    return DealBatch(history.deal_id, history.process, history.version, snapshot, list(history.events))


@dataclass(frozen=True)
class Rows:
    """What histories write: the log's rows, and each deal's batch for the projections."""

    log: list[tuple[object, ...]]
    batches: list[DealBatch]

    def without(self, deal_ids: set[str]) -> Rows:
        return Rows(
            [r for r in self.log if r[0] not in deal_ids], [b for b in self.batches if b.deal_id not in deal_ids]
        )

    def heads(self) -> dict[str, tuple[int, str]]:
        """Each deal's number of events and the hash that ends its chain (rows are in seq order)."""
        out: dict[str, tuple[int, str]] = {}
        for row in self.log:
            deal_id, seq, digest = str(row[0]), int(row[1]), str(row[-1])  # type: ignore[call-overload]
            out[deal_id] = (seq, digest)
        return out


def rows_of(histories: Sequence[History]) -> Rows:
    """The histories' rows: pure and CPU-bound (an import builds them in worker processes)."""
    out = Rows([], [])
    for h in histories:
        out.log.extend(log_rows(h))
        out.batches.append(batch_of(h))
    return out


async def load_rows(conn: Conn, written: Rows) -> int:
    """COPY the rows into the log and bring the read models up to them; returns the events written."""
    await conn.copy_records_to_table("deal_events", records=written.log, columns=LOG_COLUMNS)
    await projections.apply(conn, written.batches)
    return len(written.log)


async def load(conn: Conn, histories: Sequence[History]) -> int:
    """COPY the histories into the log and bring the read models up to them; returns the events written."""
    return await load_rows(conn, rows_of(histories))
