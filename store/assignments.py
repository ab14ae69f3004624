"""Choosing the member a deal is handed to: the shared state the assignment rules read, and the
choice made for each stage visit, kept so that it is made once.

The choice is keyed by `(deal_id, entry_seq)`, the event that put the deal in the stage. An
activity that is retried (a lost reply, a timeout, a worker that died after the commit) finds the
choice already made and returns it, so the deal gets the same member and the round-robin rotation
moves once per visit, however often it is asked. Choices for one process are made one at a
time (an advisory lock held for the transaction), so two deals handed over at the same instant
never read the same turn or the same counts.

The rules themselves are the pure functions of `domain.handoffs`; this module only reads what
they need:

- round-robin: each member's latest choice for the team (the member least recently chosen gets
  the deal);
- fewest-open: each member's open deals of the process in the `deals` projection, corrected for
  choices the projection does not show yet (it trails a deal by its flush window: the deal
  handed over a second ago still counts for its previous owner there).
"""

from __future__ import annotations

import asyncpg

from definitions.model import AssignRule
from domain import handoffs
from domain.activity_io import OwnerChoice, OwnerRequest

# how far back the choices the projection may lack are looked for: a deal's appends trail it by a
# flush window (seconds), so this only bounds the scan; a deal whose appends were held up for
# longer (the log down for an hour) counts for its previous owner until they arrive
PENDING_WINDOW = "1 hour"

_LAST_TURNS = """
SELECT m.member, (SELECT max(c.turn) FROM handoff_choices c
                  WHERE c.process = $1 AND c.team = $2 AND c.to_owner = m.member) AS last_turn
FROM unnest($3::text[]) AS m(member)
"""

_OPEN_DEALS = f"""
WITH projected AS (
    SELECT owner, count(*) AS n FROM deals
    WHERE process = $1 AND status = 'open' AND owner = ANY($2::text[])
    GROUP BY owner
),
pending AS (  -- the latest choice of each deal whose projection row predates it
    SELECT c.to_owner, d.owner AS projected_owner, d.status AS projected_status
    FROM handoff_choices c LEFT JOIN deals d ON d.deal_id = c.deal_id
    WHERE c.process = $1 AND c.chosen_at > now() - interval '{PENDING_WINDOW}'
      AND (d.deal_id IS NULL OR d.updated_at < c.chosen_at)
      AND NOT EXISTS (SELECT 1 FROM handoff_choices l WHERE l.deal_id = c.deal_id AND l.entry_seq > c.entry_seq)
)
SELECT m.member,
       coalesce((SELECT p.n FROM projected p WHERE p.owner = m.member), 0)
       + (SELECT count(*) FROM pending WHERE to_owner = m.member AND coalesce(projected_status, 'open') = 'open')
       - (SELECT count(*) FROM pending WHERE projected_owner = m.member AND projected_status = 'open')
       AS open_deals
FROM unnest($2::text[]) AS m(member)
"""


async def choose(pool: asyncpg.Pool, request: OwnerRequest) -> OwnerChoice:
    """The member `request`'s deal is handed to: the one chosen before for this stage visit, or
    a new choice by the team's rule, recorded in the same transaction."""
    team = request.team
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext('dealflow.handoffs'), hashtext($1))", request.process)
        earlier = await conn.fetchrow(
            "SELECT to_owner, how FROM handoff_choices WHERE deal_id = $1 AND entry_seq = $2",
            request.deal_id,
            request.entry_seq,
        )
        if earlier is not None:
            return OwnerChoice(owner=earlier["to_owner"], how=earlier["how"], repeated=True)
        match team.assign:
            case AssignRule.round_robin:
                rows = await conn.fetch(_LAST_TURNS, request.process, team.id, team.members)
                turns = {r["member"]: int(r["last_turn"]) for r in rows if r["last_turn"] is not None}
                owner, how = handoffs.round_robin(team.members, turns)
            case AssignRule.fewest_open:
                rows = await conn.fetch(_OPEN_DEALS, request.process, team.members)
                owner, how = handoffs.fewest_open(team.members, {r["member"]: int(r["open_deals"]) for r in rows})
            case AssignRule.fixed:
                owner, how = handoffs.fixed(team)
        await conn.execute(
            "INSERT INTO handoff_choices (deal_id, entry_seq, process, team, stage, rule, from_owner, to_owner, how)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            request.deal_id,
            request.entry_seq,
            request.process,
            team.id,
            request.stage,
            team.assign.value,
            request.from_owner,
            owner,
            how,
        )
    return OwnerChoice(owner=owner, how=how)
