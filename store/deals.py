"""Reading the current-state read model: one row per deal, kept by `store.projections.deal_rows`."""

from __future__ import annotations

from datetime import datetime

import asyncpg
from pydantic import BaseModel

# the columns the benchmarks fill when they set up deals rows without a log, in the order of their records
DEAL_COLUMNS = [
    "deal_id",
    "process",
    "version",
    "owner",
    "value",
    "status",
    "stage",
    "stage_entered_at",
    "started_at",
    "ended_at",
    "last_seq",
    "touches",
    "start_owner",
    "start_version",
]


class DealRow(BaseModel):
    deal_id: str
    process: str
    version: str
    owner: str
    value: float | None
    status: str
    stage: str | None
    stage_entered_at: datetime | None
    started_at: datetime | None
    ended_at: datetime | None
    last_seq: int
    touches: int
    team: str | None = None
    stage_sla_breaches: int = 0  # since the deal entered its current stage
    stage_escalation: int = 0  # the highest escalation rung since then, 0 for none


_ROW = (
    "SELECT deal_id, process, version, owner, value, status, stage, stage_entered_at, started_at,"
    " ended_at, last_seq, touches, team, stage_sla_breaches, stage_escalation FROM deals"
)


async def list_deals(
    pool: asyncpg.Pool,
    *,
    stage: str | None = None,
    owner: str | None = None,
    process: str | None = None,
    status: str | None = None,
    version: str | None = None,
    team: str | None = None,
    limit: int = 1000,
    offset: int = 0,
) -> list[DealRow]:
    """Deals matching every filter given, by id; `offset` and `limit` page through them."""
    rows = await pool.fetch(
        _ROW + " WHERE ($1::text IS NULL OR stage = $1) AND ($2::text IS NULL OR owner = $2)"
        " AND ($3::text IS NULL OR process = $3) AND ($4::text IS NULL OR status = $4)"
        " AND ($5::text IS NULL OR version = $5) AND ($6::text IS NULL OR team = $6)"
        " ORDER BY deal_id LIMIT $7 OFFSET $8",
        stage,
        owner,
        process,
        status,
        version,
        team,
        limit,
        offset,
    )
    return [DealRow(**dict(r)) for r in rows]


class BoardCard(DealRow):
    """A deal on the board, with its column's totals (every deal of the column, shown or not)."""

    column_deals: int
    column_weighted: float


class BoardRows(BaseModel):
    cards: list[BoardCard]
    deals: int  # on the whole board
    changed_at: datetime | None  # the latest change of any deal on it


async def board(
    pool: asyncpg.Pool,
    process: str,
    probabilities: dict[tuple[str, str], float],
    *,
    owner: str | None = None,
    team: str | None = None,
    version: str | None = None,
    stage: str | None = None,
    per_stage: int = 50,
) -> BoardRows:
    """The deals a pipeline board shows: every deal of the process still in a stage (open, or won
    and in a post-sale stage), the `per_stage` longest in their stage of each column, with each
    column's count and weighted value (value x `probabilities[(version, stage)]`) over all of
    its deals. One query: the totals are window aggregates over the same rows."""
    keys = list(probabilities)
    rows = await pool.fetch(
        """
        WITH p(version, stage, probability) AS (SELECT * FROM unnest($6::text[], $7::text[], $8::float8[])),
        d AS (
            SELECT d.deal_id, d.process, d.version, d.owner, d.value, d.status, d.stage, d.stage_entered_at,
                   d.started_at, d.ended_at, d.last_seq, d.touches, d.team, d.stage_sla_breaches,
                   d.stage_escalation,
                   row_number() OVER (PARTITION BY d.stage ORDER BY d.stage_entered_at, d.deal_id) AS n,
                   count(*) OVER (PARTITION BY d.stage) AS column_deals,
                   sum(coalesce(d.value, 0) * coalesce(p.probability, 0)) OVER (PARTITION BY d.stage)
                       AS column_weighted,
                   count(*) OVER () AS deals,
                   max(d.updated_at) OVER () AS changed_at
            FROM deals d LEFT JOIN p ON p.version = d.version AND p.stage = d.stage
            WHERE d.process = $1 AND d.stage IS NOT NULL AND d.status IN ('open', 'won')
              AND ($2::text IS NULL OR d.owner = $2) AND ($3::text IS NULL OR d.team = $3)
              AND ($4::text IS NULL OR d.version = $4) AND ($5::text IS NULL OR d.stage = $5)
        )
        SELECT * FROM d WHERE n <= $9 ORDER BY stage, n
        """,
        process,
        owner,
        team,
        version,
        stage,
        [k[0] for k in keys],
        [k[1] for k in keys],
        [probabilities[k] for k in keys],
        per_stage,
    )
    cards = [BoardCard(**{k: v for k, v in dict(r).items() if k not in ("n", "deals", "changed_at")}) for r in rows]
    return BoardRows(
        cards=cards,
        deals=rows[0]["deals"] if rows else 0,
        changed_at=rows[0]["changed_at"] if rows else None,
    )


async def running_on(pool: asyncpg.Pool, process: str, version: str) -> list[DealRow]:
    """Deals of a version whose workflow still runs: open, or won and in a post-sale stage."""
    rows = await pool.fetch(
        _ROW + " WHERE process = $1 AND version = $2 AND (status = 'open' OR (status = 'won' AND stage IS NOT NULL))"
        " ORDER BY deal_id",
        process,
        version,
    )
    return [DealRow(**dict(r)) for r in rows]


class LinkedDeal(BaseModel):
    deal_id: str
    process: str
    version: str
    status: str
    stage: str | None
    value: float | None
    customer: str | None
    follows: str | None
    follow_kind: str | None
    started_at: datetime | None
    depth: int  # 0 for the first deal of the chain


_CHAIN = """
WITH RECURSIVE up AS (  -- from the deal back to the first deal of its chain
    SELECT deal_id, follows, 0 AS n FROM deals WHERE deal_id = $1
    UNION ALL
    SELECT d.deal_id, d.follows, up.n + 1 FROM deals d JOIN up ON d.deal_id = up.follows WHERE up.n < 100
),
root AS (SELECT deal_id FROM up ORDER BY n DESC LIMIT 1),
down AS (  -- and from there every follow-on, and theirs
    SELECT d.deal_id, 0 AS depth FROM deals d JOIN root USING (deal_id)
    UNION ALL
    SELECT d.deal_id, down.depth + 1 FROM deals d JOIN down ON d.follows = down.deal_id WHERE down.depth < 100
)
SELECT d.deal_id, d.process, d.version, d.status, d.stage, d.value, d.customer, d.follows, d.follow_kind,
       d.started_at, down.depth
FROM down JOIN deals d USING (deal_id) ORDER BY down.depth, d.started_at, d.deal_id
"""


async def chain(pool: asyncpg.Pool, deal_id: str) -> list[LinkedDeal]:
    """Every deal linked to `deal_id` by rebuy follow-ons, from the first one down."""
    return [LinkedDeal(**dict(r)) for r in await pool.fetch(_CHAIN, deal_id)]


class CustomerSummary(BaseModel):
    customer: str
    deals: int
    won: int
    lost: int
    open: int
    won_value: float
    follow_ons: int
    follow_ons_won: int
    first_started: datetime | None
    processes: list[str]


async def customers(pool: asyncpg.Pool, *, process: str | None = None) -> list[CustomerSummary]:
    """Per customer (the deals' `customer` field), across all their deals and follow-ons."""
    rows = await pool.fetch(
        "SELECT customer, count(*) AS deals, count(*) FILTER (WHERE status = 'won') AS won,"
        " count(*) FILTER (WHERE status = 'lost') AS lost, count(*) FILTER (WHERE status = 'open') AS open,"
        " coalesce(sum(value) FILTER (WHERE status = 'won'), 0) AS won_value,"
        " count(*) FILTER (WHERE follows IS NOT NULL) AS follow_ons,"
        " count(*) FILTER (WHERE follows IS NOT NULL AND status = 'won') AS follow_ons_won,"
        " min(started_at) AS first_started, array_agg(DISTINCT process ORDER BY process) AS processes"
        " FROM deals WHERE customer IS NOT NULL"
        " AND ($1::text IS NULL OR customer IN (SELECT customer FROM deals WHERE process = $1))"
        " GROUP BY customer ORDER BY won_value DESC, customer",
        process,
    )
    return [CustomerSummary(**dict(r)) for r in rows]
