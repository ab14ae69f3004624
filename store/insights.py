"""What the insights (phase strength per rep, which value of a fact wins, follow-up persistence)
share: the deal set they cover, the process's stage order, and who owned each deal when.

Each answer is computed in one repeatable-read transaction, like `store.metrics`, from temporary
tables made here: `i_scope` (the deals), `i_stages` (the definition's stage order) and
`i_owners` (every change of owner). A deal's owner changes when it is handed off (`HandedOff`,
to `to_owner`) or when an escalation reassigns it (`Escalated.reassigned_to`); before the first
change it is the owner the deal started with. "The owner at an event" is the owner after every
change logged before that event (a smaller sequence number), so a hand-off that is logged right
after the stage entry that caused it already counts for the stage entered, not the one left.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

import asyncpg
from pydantic import BaseModel

from definitions.model import ProcessDefinition

WORK_MEM = "256MB"
NO_SEQ = 2_147_483_647  # "after every event": the owner as of the instant looked from


class Scope(BaseModel):
    """Which deals an answer covers: those of the process whose DealStarted falls in [since,
    until), optionally of one version (started on it or migrated to it), counting only events at
    or before `as_of`."""

    process: str
    version: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    as_of: datetime | None = None

    @property
    def narrowed(self) -> bool:
        return any(x is not None for x in (self.version, self.since, self.until))


_SCOPE = """
CREATE TEMP TABLE i_scope ON COMMIT DROP AS
SELECT deal_id, coalesce(start_owner, owner) AS start_owner FROM deals
WHERE process = $1
  AND ($2::text IS NULL OR start_version = $2 OR version = $2)
  AND ($3::timestamptz IS NULL OR started_at >= $3)
  AND ($4::timestamptz IS NULL OR started_at < $4)
  AND started_at <= coalesce($5::timestamptz, 'infinity')
"""

_STAGES = """
CREATE TEMP TABLE i_stages ON COMMIT DROP AS
SELECT s.stage, s.pos, p.phase, x.post_sale
FROM unnest($1::text[]) WITH ORDINALITY AS s(stage, pos)
JOIN unnest($2::text[]) WITH ORDINALITY AS p(phase, pos) USING (pos)
JOIN unnest($3::bool[]) WITH ORDINALITY AS x(post_sale, pos) USING (pos)
"""

# the partial index deal_events_owner_changes has this predicate, word for word, so it can serve it
_OWNERS = """
CREATE TEMP TABLE i_owners ON COMMIT DROP AS
SELECT e.deal_id, e.seq,
       CASE WHEN e.type = 'HandedOff' THEN e.payload->>'to_owner' ELSE e.payload->>'reassigned_to' END AS owner
FROM deal_events e
WHERE e.process = $1 AND e.occurred_at <= coalesce($2::timestamptz, 'infinity')
  AND (e.type = 'HandedOff' OR (e.type = 'Escalated' AND e.payload->>'reassigned_to' IS NOT NULL)) /*scope*/
"""


def scoped(sql: str, scope: Scope, alias: str = "e") -> str:
    """`sql` limited to the deals in scope. Without a version or a start window, every event read
    (of the process, up to `as_of`) already belongs to a deal in scope: the semi-join is left out."""
    limit = f"AND {alias}.deal_id IN (SELECT deal_id FROM i_scope)" if scope.narrowed else ""
    return sql.replace("/*scope*/", limit)


def owner_at(table: str, seq: str, keys: tuple[str, ...]) -> str:
    """SQL for the rows of `table` (with a deal_id column, one row per `keys`) and the owner of the
    deal at the event `seq` (a column of it; NULL: as of the instant looked from) as `rep`."""
    key = ", ".join(f"r.{k}" for k in keys)
    return f"""
    SELECT DISTINCT ON ({key}) r.*, coalesce(o.owner, s.start_owner, '?') AS rep
    FROM {table} r
    JOIN i_scope s ON s.deal_id = r.deal_id
    LEFT JOIN i_owners o ON o.deal_id = r.deal_id AND o.seq < coalesce(r.{seq}, {NO_SEQ})
    ORDER BY {key}, o.seq DESC NULLS LAST
    """


@asynccontextmanager
async def snapshot(
    pool: asyncpg.Pool, d: ProcessDefinition, scope: Scope, *, owners: bool = True
) -> AsyncIterator[Any]:
    """A connection inside one repeatable-read transaction, with `i_scope`, `i_stages` and (unless
    `owners` is false) `i_owners` made: every query on it sees the same log. The owner changes are
    read from each change's row, the costliest part, so an answer that credits no one skips them."""
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read"):
        # an analytical query: let its sorts and hashes stay in memory (this transaction only)
        await conn.execute(f"SET LOCAL work_mem = '{WORK_MEM}'")
        await conn.execute(_SCOPE, scope.process, scope.version, scope.since, scope.until, scope.as_of)
        await conn.execute(
            _STAGES, [s.id for s in d.stages], [s.phase for s in d.stages], [s.post_sale for s in d.stages]
        )
        if owners:
            await conn.execute(scoped(_OWNERS, scope), scope.process, scope.as_of)
        await conn.execute("ANALYZE i_scope, i_owners" if owners else "ANALYZE i_scope")
        yield conn
