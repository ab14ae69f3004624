"""The event log: every domain event of every deal, exactly once, in order, append-only.

The log is the hash-chained record of the events Temporal's history holds: a batch reaches it
through an activity whose input is already in the history, so every row is a recorded event, and
no row is ever updated or deleted. `(deal_id, seq)` is the primary key and appends use
`ON CONFLICT DO NOTHING`, so an activity that is retried after a crash, a timeout or a lost reply
writes nothing twice. The read models (`store.projections`: the deal's row, its stage visits,
the metric aggregates) are brought up to exactly the events this append added, in the same
transaction, so they never miss an event that made it into the log nor count one twice.

An append makes these statements in its transaction: the deal's lock, one read of the log rows
the batch touches (the chain's link and any already logged), the insert, then the projections'
(`store.projections.apply`: a read of what the deal's aggregates and visits hold when a new event
counts in a figure, and one write per read model with something to write), and a notification
on `NOTIFY_CHANNEL` naming the deal and its last seq, which wakes whoever waits for it.
"""

from __future__ import annotations

import hashlib
import json
import logging
from datetime import datetime
from typing import Any

import asyncpg

from domain.activity_io import AppendEvents
from domain.events import DealEvent, decode_stored
from store import projections
from store.projections import DealBatch
from store.visits import Conn

# an append that adds events notifies this channel (store.log_watch listens)
NOTIFY_CHANNEL = "deal_logged"


def notice(deal_id: str, seq: int) -> str:
    """The notification's payload: the deal and its last logged seq."""
    return f"{seq} {deal_id}"


def parse_notice(payload: str) -> tuple[str, int] | None:
    """The deal and its last logged seq, from a notification's payload (None: not one)."""
    seq, _, deal_id = payload.partition(" ")
    return (deal_id, int(seq)) if seq.isdigit() and deal_id else None


_INSERT = """
INSERT INTO deal_events (deal_id, seq, type, occurred_at, actor, stage, request_id, process, version, payload,
                         prev_hash, hash, run_started_at, history_length)
SELECT $1, e.seq, e.type, e.occurred_at, e.actor, e.stage, e.request_id, $2, $3, e.payload::jsonb, e.prev_hash, e.hash,
       $13, $14
FROM unnest($4::int[], $5::text[], $6::timestamptz[], $7::text[], $8::text[], $9::text[], $10::text[], $11::text[],
            $12::text[])
     AS e(seq, type, occurred_at, actor, stage, request_id, payload, prev_hash, hash)
ON CONFLICT (deal_id, seq) DO NOTHING
RETURNING seq
"""

GENESIS = "0" * 64
# the columns a bulk loader (the benchmarks) fills, in the order of its records
LOG_COLUMNS = [
    "deal_id",
    "seq",
    "type",
    "occurred_at",
    "actor",
    "stage",
    "request_id",
    "process",
    "version",
    "payload",
    "prev_hash",
    "hash",
]
log = logging.getLogger("dealflow.event_log")


def canonical(event: DealEvent) -> str:
    """The stored form of an event, and what its hash covers."""
    return canonical_document(event.model_dump(mode="json"))


def canonical_document(document: Any) -> str:
    """A stored payload in the form its hash was taken of. The chain covers what was written, in
    the shape it was written, whatever shape the code reads it in today (domain.events.upcast)."""
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def chain_hash(prev_hash: str, payload: str) -> str:
    """Each row's hash covers its predecessor's, so editing, deleting or inserting a row shows."""
    return hashlib.sha256(f"{prev_hash}\n{payload}".encode()).hexdigest()


def chained(prev_hash: str, payloads: list[str]) -> list[tuple[str, str]]:
    """(prev_hash, hash) for each payload in turn, starting after `prev_hash`."""
    links = []
    for payload in payloads:
        digest = chain_hash(prev_hash, payload)
        links.append((prev_hash, digest))
        prev_hash = digest
    return links


class LogConflict(RuntimeError):
    """A batch holds an event that differs from the one the log has under its sequence number.

    Every batch comes from Temporal's history, so this means the log was altered or a bug let an
    event out that Temporal did not record. The log is never rewritten: the append fails (and its
    activity retries, visibly) until someone looks; `dealflow audit verify` names the row.
    """


class LogGap(LookupError):
    """The log lacks the event before a batch: an earlier batch never arrived, or was lost with a
    crash of the database after it was acknowledged. audit.repair fills it from the history."""

    def __init__(self, deal_id: str, first_seq: int) -> None:
        super().__init__(f"deal {deal_id}: event {first_seq - 1} is not in the log yet")
        self.deal_id = deal_id
        self.first_seq = first_seq


async def append(pool: asyncpg.Pool, batch: AppendEvents) -> int:
    """Append a batch; return how many events were new (0 when the batch is a retry)."""
    events = sorted(batch.events, key=lambda e: e.seq)
    if not events:
        return 0
    snap = batch.snapshot
    payloads = [canonical(e) for e in events]
    async with pool.acquire() as conn, conn.transaction():
        # one append per deal at a time: the chain below must see a settled log
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", batch.deal_id)
        stored = {
            r["seq"]: r["hash"]
            for r in await conn.fetch(
                "SELECT seq, hash FROM deal_events WHERE deal_id = $1 AND seq >= $2 AND seq <= $3",
                batch.deal_id,
                events[0].seq - 1,
                events[-1].seq,
            )
        }
        prev = GENESIS
        if events[0].seq > 1:
            if events[0].seq - 1 not in stored:  # the workflow sends events in order: an earlier batch is missing
                raise LogGap(batch.deal_id, events[0].seq)
            prev = stored[events[0].seq - 1]
        links = chained(prev, payloads)
        _check_logged(batch.deal_id, events, links, stored)
        inserted = await conn.fetch(
            _INSERT,
            batch.deal_id,
            snap.process,
            snap.version,
            [e.seq for e in events],
            [e.type for e in events],
            [e.at for e in events],
            [e.actor for e in events],
            [e.stage for e in events],
            [e.request_id for e in events],
            payloads,
            [p for p, _ in links],
            [h for _, h in links],
            batch.run_started_at,
            batch.history_length,
        )
        new = {r["seq"] for r in inserted}
        fresh = [e for e in events if e.seq in new]
        await projections.apply(conn, [DealBatch(batch.deal_id, snap.process, snap.version, snap, fresh)])
        if new:  # delivered at commit, to whoever waits for the deal (store.log_watch)
            await conn.execute("SELECT pg_notify($1, $2)", NOTIFY_CHANNEL, notice(batch.deal_id, events[-1].seq))
    return len(new)


def _check_logged(deal_id: str, events: list[DealEvent], links: list[tuple[str, str]], stored: dict[int, str]) -> None:
    """Refuse a batch whose events differ from the ones the log already holds (a retry holds the
    very same events, and so the same hashes)."""
    differs = [e.seq for e, (_, h) in zip(events, links, strict=True) if e.seq in stored and stored[e.seq] != h]
    if differs:
        log.error("deal %s: logged event %d differs from the batch; the log is left as it is", deal_id, differs[0])
        raise LogConflict(
            f"deal {deal_id}: the log holds a different event {differs[0]} than Temporal's history; "
            "the log is never rewritten (see 'dealflow audit verify')"
        )


async def read(db: asyncpg.Pool | Conn, deal_id: str, *, until: datetime | None = None) -> list[DealEvent]:
    """A deal's logged events in order (from a pool, or inside a transaction's connection)."""
    rows = await db.fetch(
        "SELECT payload FROM deal_events WHERE deal_id = $1 AND ($2::timestamptz IS NULL OR occurred_at <= $2)"
        " ORDER BY seq",
        deal_id,
        until,
    )
    return [decode_stored(r["payload"]) for r in rows]


async def last_seq(pool: asyncpg.Pool, deal_id: str) -> int:
    """The sequence number of the deal's last logged event (0: none)."""
    value = await pool.fetchval("SELECT coalesce(max(seq), 0) FROM deal_events WHERE deal_id = $1", deal_id)
    return int(value)


async def count(pool: asyncpg.Pool, deal_id: str | None = None) -> int:
    value = await pool.fetchval("SELECT count(*) FROM deal_events WHERE $1::text IS NULL OR deal_id = $1", deal_id)
    return int(value)


# every deal id in the log, by walking the primary key from one deal to the next: one index probe
# per deal rather than a scan of every event
_ALL_DEALS = """
WITH RECURSIVE ids AS (
    (SELECT deal_id FROM deal_events ORDER BY deal_id LIMIT 1)
    UNION ALL
    SELECT (SELECT e.deal_id FROM deal_events e WHERE e.deal_id > ids.deal_id ORDER BY e.deal_id LIMIT 1)
    FROM ids WHERE ids.deal_id IS NOT NULL
)
SELECT deal_id FROM ids WHERE deal_id IS NOT NULL
"""
_SOME_DEALS = """
SELECT DISTINCT deal_id FROM deal_events
WHERE ($1::text IS NULL OR process = $1)
  AND ($2::timestamptz IS NULL OR deal_id IN (SELECT deal_id FROM deal_events WHERE seq = 1 AND occurred_at >= $2))
"""


async def deal_ids(pool: asyncpg.Pool, *, process: str | None = None, since: datetime | None = None) -> list[str]:
    """The deals the log holds any event of (of a process; whose first event is since an instant)."""
    if process is None and since is None:
        rows = await pool.fetch(_ALL_DEALS)
    else:
        rows = await pool.fetch(_SOME_DEALS, process, since)
    return [r["deal_id"] for r in rows]
