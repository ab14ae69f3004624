"""Handing a deal over to the team that owns the stage it entered: when, to whom, and in words.

Whether a deal must be handed over is a question of the definition and the state alone. Which
member gets it depends on state shared between deals (whose turn it is, who has the fewest open
deals), which only the store has: the store reads that state and asks the functions here, so
each rule is written once and tested without a database. A fixed rule needs no shared state,
and the workflow applies it without an activity.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from datetime import datetime

from definitions.model import AssignRule, ProcessDefinition, Team
from domain import events
from domain.decide import system_event
from domain.events import DealEvent, HandedOff, MigratedToVersion, StageEntered
from domain.state import DealState

# the event's literal for each of the definition's rules (the event cannot import the definitions'
# enum without tying the event's shape to the language's)
RULES: dict[AssignRule, events.AssignRule] = {
    AssignRule.fixed: "fixed",
    AssignRule.round_robin: "round-robin",
    AssignRule.fewest_open: "fewest-open",
}


def team_to_hand_to(d: ProcessDefinition, state: DealState, stage: str) -> Team | None:
    """The team the deal must be handed to on entering `stage`: the stage's owning team, when the
    deal's owner is not one of its members; None when the deal stays where it is."""
    if not d.teams or not d.has_stage(stage):
        return None
    team = d.team_of(stage)
    if team is None or state.owner in team.members:
        return None
    return team


def entry_seq(deal_events: Sequence[DealEvent]) -> int | None:
    """The sequence number of the event that put the deal in its current stage visit (a stage
    entered, or a migration that mapped it): the key of that visit's handoff."""
    for event in reversed(deal_events):
        if isinstance(event, StageEntered | MigratedToVersion):
            return event.seq
    return None


def round_robin(members: Sequence[str], last_turns: Mapping[str, int]) -> tuple[str, str]:
    """The member whose last deal from this team is the oldest (one who never had one first, in
    the order the team lists them), and why in words. Taking the least recently served member
    rather than counting turns keeps the rotation fair when the list of members changes."""
    chosen = min(members, key=lambda m: (last_turns.get(m, 0), members.index(m)))
    if chosen not in last_turns:
        return chosen, f"round-robin chose {chosen}, who had no deal from this team yet"
    return chosen, f"round-robin chose {chosen}, the member longest without a deal from this team"


def fewest_open(members: Sequence[str], open_deals: Mapping[str, int]) -> tuple[str, str]:
    """The member with the fewest open deals (ties go to the one listed first), and why."""
    chosen = min(members, key=lambda m: (open_deals.get(m, 0), members.index(m)))
    others = ", ".join(f"{m} {open_deals.get(m, 0)}" for m in members if m != chosen)
    return chosen, f"fewest-open chose {chosen} with {open_deals.get(chosen, 0)} open deals" + (
        f" ({others})" if others else ""
    )


def fixed(team: Team) -> tuple[str, str]:
    assert team.person is not None  # the loader refuses a fixed team without its person
    return team.person, f"the team's fixed person is {team.person}"


def by_deal(team: Team, deal_id: str, error: str) -> tuple[str, str]:
    """When the shared state cannot be read (the activity failed for good), a member chosen from
    the deal's id alone: stable, spread evenly over the members, and said plainly."""
    digest = int.from_bytes(hashlib.sha256(deal_id.encode()).digest()[:8], "big")
    chosen = team.members[digest % len(team.members)]
    rule = team.assign.value
    return chosen, f"the {rule} choice failed ({error}), so {chosen} was chosen from the deal's id"


def reason(stage: str, team: Team, from_owner: str, how: str) -> str:
    return f"stage {stage} belongs to team {team.id}; {from_owner} is not in it; {how}"


def hand_off(state: DealState, stage: str, team: Team, to_owner: str, how: str, at: datetime) -> list[DealEvent]:
    """The HandedOff event: the engine's, recorded at the stage the deal was handed over into."""
    return system_event(
        state,
        HandedOff,
        at,
        stage=stage,
        from_owner=state.owner,
        to_owner=to_owner,
        team=team.id,
        rule=RULES[team.assign],
        reason=reason(stage, team, state.owner, how),
    )
