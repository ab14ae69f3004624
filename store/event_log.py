"""The event log: every domain event of every deal, exactly once, in order.

`(deal_id, seq)` is the primary key and appends use `ON CONFLICT DO NOTHING`, so an activity that
is retried after a crash, a timeout or a lost reply writes nothing twice. The current-state
projection row is updated in the same transaction, guarded by `last_seq`, so it never goes back
in time and never misses an event that made it into the log; so is the stage-visit projection
(`store.visits`), from exactly the events this append added.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime

import asyncpg

from store import visits
from workflows.effects import AppendEvents
from workflows.events import EVENT_ADAPTER, DealEvent, DealStarted

_INSERT = """
INSERT INTO deal_events (deal_id, seq, type, occurred_at, actor, stage, request_id, process, version, payload,
                         prev_hash, hash)
SELECT $1, e.seq, e.type, e.occurred_at, e.actor, e.stage, e.request_id, $2, $3, e.payload::jsonb, e.prev_hash, e.hash
FROM unnest($4::int[], $5::text[], $6::timestamptz[], $7::text[], $8::text[], $9::text[], $10::text[], $11::text[],
            $12::text[])
     AS e(seq, type, occurred_at, actor, stage, request_id, payload, prev_hash, hash)
ON CONFLICT (deal_id, seq) DO NOTHING
RETURNING seq
"""

_PROJECT = """
INSERT INTO deals (deal_id, process, version, owner, value, status, stage, stage_entered_at,
                   started_at, ended_at, last_seq, touches, start_owner, start_version, experiment,
                   follows, follow_kind, customer, updated_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, now())
ON CONFLICT (deal_id) DO UPDATE SET
    process = EXCLUDED.process, version = EXCLUDED.version, owner = EXCLUDED.owner,
    value = EXCLUDED.value, status = EXCLUDED.status, stage = EXCLUDED.stage,
    stage_entered_at = EXCLUDED.stage_entered_at, started_at = EXCLUDED.started_at,
    ended_at = EXCLUDED.ended_at, last_seq = EXCLUDED.last_seq, touches = EXCLUDED.touches,
    start_owner = coalesce(deals.start_owner, EXCLUDED.start_owner),
    start_version = coalesce(deals.start_version, EXCLUDED.start_version),
    experiment = coalesce(deals.experiment, EXCLUDED.experiment),
    follows = coalesce(deals.follows, EXCLUDED.follows),
    follow_kind = coalesce(deals.follow_kind, EXCLUDED.follow_kind),
    customer = coalesce(deals.customer, EXCLUDED.customer), updated_at = now()
WHERE deals.last_seq < EXCLUDED.last_seq
"""


GENESIS = "0" * 64


def canonical(event: DealEvent) -> str:
    """The stored form of an event, and what its hash covers."""
    return json.dumps(event.model_dump(mode="json"), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


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


async def append(pool: asyncpg.Pool, batch: AppendEvents) -> int:
    """Append a batch; return how many events were new (0 when the batch is a retry)."""
    events = sorted(batch.events, key=lambda e: e.seq)
    snap = batch.snapshot
    started = next((e for e in events if isinstance(e, DealStarted)), None)
    payloads = [canonical(e) for e in events]
    async with pool.acquire() as conn, conn.transaction():
        prev = GENESIS
        if events and events[0].seq > 1:
            found = await conn.fetchval(
                "SELECT hash FROM deal_events WHERE deal_id = $1 AND seq = $2", batch.deal_id, events[0].seq - 1
            )
            if found is None:  # the workflow sends events in order, so this means a gap: retry later
                raise LookupError(f"deal {batch.deal_id}: event {events[0].seq - 1} is not in the log yet")
            prev = found
        links = chained(prev, payloads)
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
        )
        await conn.execute(
            _PROJECT,
            snap.deal_id,
            snap.process,
            snap.version,
            snap.owner,
            snap.value,
            snap.status,
            snap.stage,
            snap.stage_entered_at,
            snap.started_at,
            snap.ended_at,
            snap.last_seq,
            snap.touches,
            started.owner if started else None,
            started.version if started else None,
            started.experiment if started else None,
            started.follows if started else None,
            started.follow_kind if started else None,
            started.fields.get("customer") if started else None,
        )
        new = {r["seq"] for r in inserted}
        await visits.project(conn, batch.deal_id, snap.process, [e for e in events if e.seq in new])
    return len(new)


async def read(pool: asyncpg.Pool, deal_id: str, *, until: datetime | None = None) -> list[DealEvent]:
    rows = await pool.fetch(
        "SELECT payload FROM deal_events WHERE deal_id = $1 AND ($2::timestamptz IS NULL OR occurred_at <= $2)"
        " ORDER BY seq",
        deal_id,
        until,
    )
    return [EVENT_ADAPTER.validate_json(r["payload"]) for r in rows]


async def count(pool: asyncpg.Pool, deal_id: str | None = None) -> int:
    value = await pool.fetchval("SELECT count(*) FROM deal_events WHERE $1::text IS NULL OR deal_id = $1", deal_id)
    return int(value)
