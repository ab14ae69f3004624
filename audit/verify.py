"""Does the PostgreSQL event log tell the same story as Temporal, and is it untouched?

Two independent checks: the hash chain over the log's rows (an edited, deleted or inserted row
breaks it at a named sequence number), and a comparison, event by event, with the events the
deal handed to the event-log activity according to Temporal's history.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

from domain.events import DealEvent, decode_stored
from store.event_log import GENESIS, canonical, canonical_document, chain_hash


@dataclass(frozen=True)
class LogRow:
    seq: int
    payload: str
    prev_hash: str | None
    hash: str | None

    @classmethod
    def of(cls, row: Any) -> LogRow:
        payload = row["payload"]
        return cls(
            row["seq"], payload if isinstance(payload, str) else json.dumps(payload), row["prev_hash"], row["hash"]
        )

    def event(self) -> DealEvent | None:
        return _event(self.payload)

    def as_dict(self) -> dict[str, Any]:
        return {"seq": self.seq, "payload": json.loads(self.payload), "prev_hash": self.prev_hash, "hash": self.hash}


@dataclass
class Verdict:
    deal_id: str
    log_events: int
    history_events: int
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what the reader should know, not problems

    @property
    def ok(self) -> bool:
        return not self.problems


def _event(payload: str) -> DealEvent | None:
    try:
        return decode_stored(payload)
    except ValueError:  # not JSON, or not an event (ValidationError is a ValueError)
        return None


def check_chain(rows: list[LogRow]) -> list[str]:
    """Problems in the hash chain, each naming the row (by seq) where the chain breaks."""
    problems = []
    prev = GENESIS
    expected = 1
    for row in sorted(rows, key=lambda r: r.seq):
        if row.seq != expected:
            missing = f"{expected}" if row.seq == expected + 1 else f"{expected}..{row.seq - 1}"
            if row.seq > expected:
                problems.append(f"seq {missing}: missing from the log (deleted?)")
            else:
                problems.append(f"seq {row.seq}: out of order")
        event = _event(row.payload)
        if event is None:
            problems.append(f"seq {row.seq}: payload is not a valid event (altered?)")
            prev, expected = row.hash or prev, row.seq + 1
            continue
        if row.prev_hash != prev:
            problems.append(
                f"seq {row.seq}: does not follow the row before it (a row was deleted, inserted or altered)"
            )
        if row.hash != chain_hash(row.prev_hash or prev, canonical_document(json.loads(row.payload))):
            problems.append(f"seq {row.seq}: content does not match its hash (altered)")
        if event.seq != row.seq:
            problems.append(f"seq {row.seq}: holds the payload of event {event.seq} (moved?)")
        prev, expected = row.hash or prev, row.seq + 1
    return problems


def compare(
    rows: list[LogRow],
    history: list[DealEvent],
    *,
    in_flight: Collection[int] = (),
    earlier: list[LogRow] | None = None,
) -> list[str]:
    """Differences between the log and the events recorded in Temporal's history.

    A running deal's log and history are read at different instants, so two reads of the log
    bracket the history: `earlier` (read before it) must hold nothing the history lacks, and
    `rows` (read after it) everything the history says was appended, except the events of
    appends still `in_flight`. With nothing running, both reads are the same.
    """
    problems = []
    logged = {r.seq: _event(r.payload) for r in rows}
    told = {e.seq: e for e in history}
    before = {r.seq for r in (rows if earlier is None else earlier)}
    for seq in sorted(before - set(logged)):
        problems.append(f"seq {seq}: was in the log a moment ago and is gone (deleted?)")
    for seq in sorted(before | set(told)):
        mine, theirs = logged.get(seq), told.get(seq)
        if theirs is None:
            problems.append(f"seq {seq}: in the log but not in Temporal's history (inserted?)")
        elif seq not in logged:
            if seq not in in_flight:
                problems.append(f"seq {seq}: {theirs.type} is in Temporal's history but not in the log")
        elif mine is None or canonical(mine) != canonical(theirs):
            what = "unreadable" if mine is None else f"{mine.type} differs from {theirs.type} in Temporal's history"
            problems.append(f"seq {seq}: {what}")
    return problems


def verify(
    deal_id: str,
    rows: list[LogRow],
    history: list[DealEvent],
    *,
    in_flight: Collection[int] = (),
    earlier: list[LogRow] | None = None,
) -> Verdict:
    verdict = Verdict(deal_id, len(rows), len(history))
    verdict.problems = check_chain(rows) + compare(rows, history, in_flight=in_flight, earlier=earlier)
    return verdict
