"""Who may do what to a deal: the check the deal workflow's update validators run.

The client resolves the acting identity's role and team from the access configuration and sends
them with each request (`Claim`); the workflow cannot read configuration, so it checks the claim
against the deal it holds: a rep acts only on deals they own, a manager on deals of their team,
only ops migrate a deal to another version, and an auditor changes nothing. A request without a
claim comes from a deployment that has no access configuration and is not checked.

This is defence in depth, not authentication: who may reach Temporal at all is decided by its
own TLS certificates, API keys and authorizer (see the README).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

from domain.state import DealState

Role = Literal["rep", "manager", "ops", "auditor"]
ROLES: tuple[Role, ...] = ("rep", "manager", "ops", "auditor")
Action = Literal["act", "migrate"]


class Claim(BaseModel):
    """The acting identity's role and team, as the client's access configuration has them."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    role: Role
    team: str | None = None


class Forbidden(Exception):
    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


def check(claim: Claim | None, actor: str, action: Action, deal: DealState) -> None:
    """Raise `Forbidden` when `actor` with `claim` may not do `action` to `deal`."""
    if claim is None:
        return
    if claim.role == "auditor":
        raise Forbidden(f"{actor} is an auditor: auditors read, they change nothing")
    if action == "migrate":
        if claim.role != "ops":
            raise Forbidden(f"{actor} is a {claim.role}: only ops migrate deals to another version")
        return
    if claim.role == "ops":
        raise Forbidden(f"{actor} is ops: deal actions belong to the deal's rep and their manager")
    if actor == deal.owner:
        return
    if claim.role == "manager":
        if deal.team is not None and claim.team == deal.team:
            return
        theirs, its = claim.team or "(none)", deal.team or "(none)"
        raise Forbidden(f"{actor} manages team {theirs}; deal {deal.deal_id} belongs to team {its}")
    raise Forbidden(f"{actor} is a rep and deal {deal.deal_id} is owned by {deal.owner}")
