"""What the demo reports of the deals it simulated (all ids under one prefix): events logged,
the effects they record, and touches the outbox sent."""

from __future__ import annotations

import asyncpg

_EFFECTS = """
SELECT
  count(*) FILTER (WHERE type = 'TouchSent') AS touches,
  count(*) FILTER (WHERE type = 'TouchFailed') AS touches_failed,
  count(*) FILTER (WHERE type = 'CadenceStarted') AS cadences,
  count(*) FILTER (WHERE type = 'CadenceCompleted') AS completed,
  count(*) FILTER (WHERE type = 'CadenceStopped' AND payload->>'reason' IN ('replied', 'meeting_booked')) AS by_reply,
  count(*) FILTER (WHERE type = 'CadenceStopped' AND payload->>'reason' = 'deal_ended') AS by_end,
  count(*) FILTER (WHERE type = 'ProposalGenerated') AS proposals,
  count(*) FILTER (WHERE type = 'ProposalFailed') AS proposals_failed,
  count(*) FILTER (WHERE type = 'SlaBreached') AS breaches,
  count(*) FILTER (WHERE type = 'Escalated') AS escalations
FROM deal_events WHERE deal_id LIKE $1
"""


def _like(prefix: str) -> str:
    return prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


async def events(pool: asyncpg.Pool, prefix: str) -> int:
    return int(await pool.fetchval("SELECT count(*) FROM deal_events WHERE deal_id LIKE $1", _like(prefix)))


async def effects(pool: asyncpg.Pool, prefix: str) -> dict[str, int]:
    row = await pool.fetchrow(_EFFECTS, _like(prefix))
    assert row is not None  # an aggregate without GROUP BY always answers one row
    return {k: int(v) for k, v in row.items()}


async def touches_sent(pool: asyncpg.Pool, prefix: str) -> int:
    return int(
        await pool.fetchval(
            "SELECT count(*) FROM outbox WHERE deal_id LIKE $1 AND kind = 'touch' AND status = 'sent'", _like(prefix)
        )
    )
