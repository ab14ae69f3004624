"""Who may do what: the one place that answers "may this identity do X to Y" for every use case.

Three kinds of answer, all here:

- a role's permissions (`ALLOWED`): deploying, migrating, experiments, imports, starting deals,
  acting on them, reading. The CLI, the API and the pages (which offer only what the caller may
  do: `allowed`) all ask this module before anything is sent;
- who may start a deal for whom (`start_refusal`: a rep for themselves, a manager for their
  team) and who may make or revoke API tokens for whom (`issue_refusal`: ops for anyone, a
  manager for their own team, no one for a role above their own);
- what a claim may do to one deal (`deal_refusal`, which is `domain.access.check`): only the deal
  knows its owner and team, so the workflow's update validators run that rule on the claim the
  application layer sends (`claim`); its refusals come back as `Refused` (forbidden) and are
  recorded here like the others (`record_refusal`).

Every refusal is recorded for auditors (store/access_log.py) and raised as `Refused` with code
`forbidden`. With no access configuration, everyone may do everything.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, NoReturn

from app.access import AccessPolicy, Identity
from app.context import Context
from app.errors import Refused
from domain.access import Claim, Forbidden, Role, check
from domain.state import DealState
from store import access_log

Permission = Literal["deploy", "migrate", "experiment", "import", "start", "act", "read"]

ALLOWED: dict[Role, set[Permission]] = {
    "rep": {"start", "act", "read"},
    "manager": {"start", "act", "read"},
    "ops": {"deploy", "migrate", "experiment", "import", "read"},
    "auditor": {"read"},
}

TOKEN_ISSUERS: set[Role] = {"ops", "manager"}
RANK: dict[Role, int] = {"auditor": 0, "rep": 1, "manager": 2, "ops": 3}


class AccessDenied(Exception):
    def __init__(self, actor: str, permission: str, message: str):
        super().__init__(message)
        self.actor, self.permission, self.message = actor, permission, message


# --- the rules, pure ------------------------------------------------------------------------


def allowed(role: Role | None, permission: Permission) -> bool:
    """Whether a role allows `permission`; None (access control off) allows everything."""
    return role is None or permission in ALLOWED[role]


def identity(policy: AccessPolicy, actor: str, permission: str) -> Identity:
    found = policy.identities.get(actor)
    if found is None:
        # the access file by its name: a refusal can reach a page, and a page shows no server path
        named = " + ".join(Path(part).name for part in policy.source.split(" + "))
        raise AccessDenied(actor, permission, f"{actor!r} is not a known identity ({named})")
    return found


def claim(policy: AccessPolicy, actor: str, permission: Permission) -> Claim:
    """The actor's claim, if their role allows `permission`; AccessDenied otherwise."""
    who = identity(policy, actor, permission)
    if not allowed(who.role, permission):
        may = ", ".join(sorted(ALLOWED[who.role]))
        raise AccessDenied(actor, permission, f"{actor} is {who.role}: may {may}, not {permission}")
    return Claim(role=who.role, team=who.team)


def start_refusal(policy: AccessPolicy, actor: str, owner: str, claim: Claim) -> str | None:
    """Why `actor` (holding `claim`) may not start a deal owned by `owner`, or None."""
    if claim.role == "rep" and owner != actor:
        return f"{actor} is a rep: a rep starts deals they own"
    if claim.role == "manager" and policy.team_of(owner) != claim.team:
        return f"{actor} manages team {claim.team}; {owner} is not in it"
    return None


def issue_refusal(policy: AccessPolicy, actor: str, target: str, action: str = "make tokens") -> str | None:
    """Why `actor` may not do `action` ("make tokens", "revoke tokens") for identity `target`, or None."""
    who = policy.identities.get(actor)
    if who is None:
        return f"{actor!r} is not an identity of the access configuration ({policy.source})"
    if who.role not in TOKEN_ISSUERS:
        return f"{actor} is {who.role}: only ops and managers {action}"
    theirs = policy.identities.get(target)
    if theirs is None:
        return f"{target!r} is not an identity of the access configuration"
    if RANK[theirs.role] > RANK[who.role]:
        return f"{target} is {theirs.role}, a role above {actor}'s ({who.role})"
    if who.role == "manager" and theirs.team != who.team:
        return f"{actor} manages team {who.team}; {target} is not in it ({theirs.team or 'no team'})"
    return None


def deal_refusal(claim: Claim | None, actor: str, action: Literal["act", "migrate"], deal: DealState) -> str | None:
    """Why `actor` may not do `action` to `deal`: the rule the deal's update validators run."""
    try:
        check(claim, actor, action, deal)
    except Forbidden as exc:
        return exc.message
    return None


# --- enforcing them: each refusal recorded and raised -----------------------------------------


async def record_refusal(
    ctx: Context, actor: str, role: Role | None, action: str, target: str | None, why: str
) -> None:
    await access_log.record(ctx.pool, actor, role, action, target, why)


async def _refuse(ctx: Context, actor: str, action: str, target: str | None, why: str) -> NoReturn:
    policy = ctx.access
    known = policy.identities.get(actor) if policy is not None else None
    await record_refusal(ctx, actor, known.role if known else None, action, target, why)
    raise Refused(why, code="forbidden")


async def require(ctx: Context, actor: str, permission: Permission, target: str | None = None) -> Claim | None:
    """The claim to send with a request, after the role check (`Refused`, forbidden, and
    recorded, when the role does not allow it); None when access is off."""
    policy = ctx.access
    if policy is None:
        return None
    try:
        return claim(policy, actor, permission)
    except AccessDenied as denied:
        await _refuse(ctx, actor, permission, target, denied.message)


async def require_start(
    ctx: Context, actor: str, owner: str, deal_id: str, permission: Permission = "start"
) -> tuple[Claim | None, str | None]:
    """The claim and the owner's team for a deal `actor` starts for `owner`."""
    policy = ctx.access
    found = await require(ctx, actor, permission, deal_id)
    if policy is None or found is None:
        return None, None
    why = start_refusal(policy, actor, owner, found)
    if why is not None:
        await _refuse(ctx, actor, "start", deal_id, why)
    return found, policy.team_of(owner)


async def require_issue(ctx: Context, actor: str, target: str, action: str) -> None:
    """Refuse unless `actor` may make or revoke (`action`) a token of identity `target`."""
    policy = ctx.access
    if policy is None:
        return
    why = issue_refusal(policy, actor, target, action)
    if why is not None:
        await _refuse(ctx, actor, action, target, why)
