"""Appends to the event log that keep failing, kept where people look for them.

The append activity is retried by Temporal until it goes through, which is right for an outage
but, for a batch the log refuses every time, would be a retry loop nobody sees while the deal
stays missing from the log. So each failed attempt is written here (outside the log, which is
append-only; this table is replaced and cleared as attempts fail and succeed), and the deal's
status, `audit verify`, the worker's and the web app's /readyz and the
`dealflow_log_appends_failing` gauge read it.
"""

from __future__ import annotations

from datetime import datetime

import asyncpg
from pydantic import BaseModel

# an error message is kept to this many characters (it may quote the batch)
MAX_ERROR = 1000


class AppendFailure(BaseModel):
    """A deal whose log lacks events `first_seq`..`last_seq` because their append keeps failing."""

    deal_id: str
    first_seq: int
    last_seq: int
    error: str
    attempts: int
    since: datetime
    last_at: datetime

    def describe(self) -> str:
        events = (
            f"event {self.first_seq}"
            if self.first_seq == self.last_seq
            else f"events {self.first_seq}..{self.last_seq}"
        )
        return (
            f"the log lacks {events}: their append has failed {self.attempts} times since "
            f"{self.since:%Y-%m-%d %H:%M:%S %Z} ({self.error})"
        )


def _clean(error: str) -> str:
    """The error as text the table can hold, whatever the refused batch held."""
    text = error.replace("\x00", "\\x00").encode("utf-8", "backslashreplace").decode("utf-8")
    return text[:MAX_ERROR]


async def record(pool: asyncpg.Pool, deal_id: str, first_seq: int, last_seq: int, error: str, attempt: int) -> None:
    await pool.execute(
        "INSERT INTO log_append_failures (deal_id, first_seq, last_seq, error, attempts)"
        " VALUES ($1, $2, $3, $4, $5)"
        " ON CONFLICT (deal_id) DO UPDATE SET first_seq = least(log_append_failures.first_seq, EXCLUDED.first_seq),"
        " last_seq = greatest(log_append_failures.last_seq, EXCLUDED.last_seq), error = EXCLUDED.error,"
        " attempts = greatest(log_append_failures.attempts + 1, EXCLUDED.attempts), last_at = now()",
        deal_id,
        first_seq,
        last_seq,
        _clean(error),
        attempt,
    )


async def clear(pool: asyncpg.Pool, deal_id: str, up_to_seq: int) -> None:
    """The append of events up to `up_to_seq` went through: the deal's log has caught up."""
    await pool.execute("DELETE FROM log_append_failures WHERE deal_id = $1 AND last_seq <= $2", deal_id, up_to_seq)


async def of_deal(pool: asyncpg.Pool, deal_id: str) -> AppendFailure | None:
    row = await pool.fetchrow("SELECT * FROM log_append_failures WHERE deal_id = $1", deal_id)
    return None if row is None else AppendFailure(**dict(row))


async def failing(pool: asyncpg.Pool, *, limit: int = 100) -> list[AppendFailure]:
    """The deals whose appends are failing, the longest-failing first."""
    rows = await pool.fetch("SELECT * FROM log_append_failures ORDER BY since LIMIT $1", limit)
    return [AppendFailure(**dict(r)) for r in rows]


async def count(pool: asyncpg.Pool) -> tuple[int, float]:
    """How many deals' appends are failing, and for how many seconds the oldest has."""
    row = await pool.fetchrow(
        "SELECT count(*) AS n, coalesce(extract(epoch FROM now() - min(since)), 0)::float8 AS oldest"
        " FROM log_append_failures"
    )
    assert row is not None
    return int(row["n"]), float(row["oldest"])
