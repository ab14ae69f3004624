"""Does the PostgreSQL event log tell the same story as Temporal, and is it untouched?

Two independent checks: the hash chain over the log's rows (an edited, deleted or inserted row
breaks it at a named sequence number), and a comparison, event by event, with the events the
deal handed to the event-log activity according to Temporal's history. Each finding has a stable
code (`Finding.code`, in `--json` and the API) and names the sequence numbers it concerns.
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


@dataclass(frozen=True)
class Finding:
    """One way the log fails to match: `code` is stable, `message` says it in words."""

    code: str
    message: str
    seqs: tuple[int, ...] = ()

    def __str__(self) -> str:
        return self.message

    def as_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "seqs": list(self.seqs)}


@dataclass
class Verdict:
    deal_id: str
    log_events: int
    history_events: int
    findings: list[Finding] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what the reader should know, not problems

    @property
    def ok(self) -> bool:
        return not self.findings

    @property
    def problems(self) -> list[str]:
        return [f.message for f in self.findings]


def _span(seqs: Collection[int]) -> str:
    ordered = sorted(seqs)
    if len(ordered) == 1:
        return f"seq {ordered[0]}"
    if ordered == list(range(ordered[0], ordered[-1] + 1)):
        return f"seqs {ordered[0]}..{ordered[-1]}"
    return "seqs " + ", ".join(str(s) for s in ordered)


def _event(payload: str) -> DealEvent | None:
    try:
        return decode_stored(payload)
    except ValueError:  # not JSON, or not an event (ValidationError is a ValueError)
        return None


def check_chain(rows: list[LogRow]) -> list[Finding]:
    """Problems in the hash chain, each naming the row (by seq) where the chain breaks."""
    problems: list[Finding] = []
    prev = GENESIS
    expected = 1
    for row in sorted(rows, key=lambda r: r.seq):
        if row.seq != expected:
            missing = f"{expected}" if row.seq == expected + 1 else f"{expected}..{row.seq - 1}"
            if row.seq > expected:
                gap = tuple(range(expected, row.seq))
                problems.append(Finding("chain_gap", f"seq {missing}: missing from the log (deleted?)", gap))
            else:
                problems.append(Finding("out_of_order", f"seq {row.seq}: out of order", (row.seq,)))
        event = _event(row.payload)
        if event is None:
            problems.append(
                Finding("unreadable", f"seq {row.seq}: payload is not a valid event (altered?)", (row.seq,))
            )
            prev, expected = row.hash or prev, row.seq + 1
            continue
        if row.prev_hash != prev:
            why = f"seq {row.seq}: does not follow the row before it (a row was deleted, inserted or altered)"
            problems.append(Finding("chain_broken", why, (row.seq,)))
        if row.hash != chain_hash(row.prev_hash or prev, canonical_document(json.loads(row.payload))):
            problems.append(
                Finding("hash_mismatch", f"seq {row.seq}: content does not match its hash (altered)", (row.seq,))
            )
        if event.seq != row.seq:
            why = f"seq {row.seq}: holds the payload of event {event.seq} (moved?)"
            problems.append(Finding("moved", why, (row.seq,)))
        prev, expected = row.hash or prev, row.seq + 1
    return problems


def compare(
    rows: list[LogRow],
    history: list[DealEvent],
    *,
    in_flight: Collection[int] = (),
    earlier: list[LogRow] | None = None,
) -> list[Finding]:
    """Differences between the log and the events recorded in Temporal's history.

    A running deal's log and history are read at different instants, so two reads of the log
    bracket the history: `earlier` (read before it) must hold nothing the history lacks, and
    `rows` (read after it) everything the history says was appended, except the events of
    appends still `in_flight`. With nothing running, both reads are the same. The events the
    history holds and the log lacks are one finding, `missing_from_log`, naming them all: a log
    that is a strict prefix of the history (or empty) never passes.
    """
    problems: list[Finding] = []
    logged = {r.seq: _event(r.payload) for r in rows}
    told = {e.seq: e for e in history}
    before = {r.seq for r in (rows if earlier is None else earlier)}
    for seq in sorted(before - set(logged)):
        problems.append(Finding("gone", f"seq {seq}: was in the log a moment ago and is gone (deleted?)", (seq,)))
    missing: list[int] = []
    for seq in sorted(before | set(told)):
        mine, theirs = logged.get(seq), told.get(seq)
        if theirs is None:
            why = f"seq {seq}: in the log but not in Temporal's history (inserted?)"
            problems.append(Finding("not_in_history", why, (seq,)))
        elif seq not in logged:
            if seq not in in_flight:
                missing.append(seq)
        elif mine is None or canonical(mine) != canonical(theirs):
            what = "unreadable" if mine is None else f"{mine.type} differs from {theirs.type} in Temporal's history"
            problems.append(Finding("differs", f"seq {seq}: {what}", (seq,)))
    if missing:
        types = ", ".join(sorted({told[s].type for s in missing}))
        why = f"{_span(missing)} ({types}): in Temporal's history but not in the log"
        problems.append(Finding("missing_from_log", why, tuple(missing)))
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
    verdict.findings = check_chain(rows) + compare(rows, history, in_flight=in_flight, earlier=earlier)
    return verdict
