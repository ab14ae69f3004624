"""Handing a deal over to the team that owns the stage it entered.

A fixed rule is applied here; round-robin and fewest-open need state shared between deals, so
an activity chooses (it keeps the choice per stage visit, so a retry returns the same member).
If the activity fails for good, a member is chosen from the deal's id instead and the reason
says so: a deal is never held at a handoff. The handoff runs in the deal's loop before the
effects that follow the same entry, so a proposal or a cadence started on entering the stage
already speaks for the new owner, and no reminder of the stage fires before the handoff.
"""

from __future__ import annotations

from temporalio import workflow
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from definitions.model import AssignRule, Team
    from domain import handoffs
    from domain.activity_io import CHOOSE_OWNER, CHOOSE_TIMEOUT, OwnerChoice, OwnerRequest
    from domain.effects import HandOver
    from workflows.activity_calls import HANDOFF_RETRY, error_text
    from workflows.ledger import Ledger


def _still_due(ledger: Ledger, effect: HandOver) -> Team | None:
    """The team to hand the deal to, if the deal is still in the visit that called for it and
    still not owned by a member (a rep may have moved it on meanwhile, an escalation reassigned
    it, a migration changed the definition)."""
    state = ledger.state
    if state.is_finished or state.stage != effect.stage or handoffs.entry_seq(ledger.events) != effect.entry_seq:
        return None
    return handoffs.team_to_hand_to(ledger.pinned.definition, state, effect.stage)


async def hand_over(ledger: Ledger, effect: HandOver) -> None:
    team = _still_due(ledger, effect)
    if team is None:
        return
    if team.assign is AssignRule.fixed:
        owner, how = handoffs.fixed(team)
    else:
        state = ledger.state
        request = OwnerRequest(
            deal_id=state.deal_id,
            entry_seq=effect.entry_seq,
            process=state.process,
            stage=effect.stage,
            team=team,
            from_owner=state.owner,
        )
        try:
            choice: OwnerChoice = await workflow.execute_activity(
                CHOOSE_OWNER,
                request,
                result_type=OwnerChoice,
                start_to_close_timeout=CHOOSE_TIMEOUT,
                retry_policy=HANDOFF_RETRY,
            )
            owner, how = choice.owner, choice.how
        except ActivityError as exc:
            owner, how = handoffs.by_deal(team, state.deal_id, error_text(exc)[0])
        team = _still_due(ledger, effect)
        if team is None:
            return
    ledger.record(handoffs.hand_off(ledger.state, effect.stage, team, owner, how, workflow.now()))
