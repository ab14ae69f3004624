"""The access rules of every use case, answered by one module (app/permissions.py): a role's
permissions, who starts deals for whom, who makes tokens for whom, what a claim may do to one
deal; and the pages offer exactly what the rules allow."""

from __future__ import annotations

from typing import get_args

import pytest

from app import permissions
from app.access import AccessPolicy, Identity
from app.permissions import AccessDenied, Permission
from domain.access import ROLES, Claim
from domain.state import DealState
from web.identity import Caller
from web.views import may

POLICY = AccessPolicy(
    {
        "rita": Identity(role="rep", team="east"),
        "ben": Identity(role="rep", team="west"),
        "mona": Identity(role="manager", team="east"),
        "olga": Identity(role="ops"),
        "ada": Identity(role="auditor"),
    },
    "/srv/home/access.yaml",
)


def test_each_role_may_exactly_its_permissions() -> None:
    table = {role: {p for p in get_args(Permission) if permissions.allowed(role, p)} for role in ROLES}
    assert table == {
        "rep": {"start", "act", "read"},
        "manager": {"start", "act", "read"},
        "ops": {"deploy", "migrate", "experiment", "import", "read"},
        "auditor": {"read"},
    }
    assert all(permissions.allowed(None, p) for p in get_args(Permission)), "access off allows everything"


def test_the_pages_offer_what_the_rules_allow() -> None:
    for role in (*ROLES, None):
        caller = Caller("someone", role, None, "session")
        for p in get_args(Permission):
            assert may(caller, p) == permissions.allowed(role, p)


def test_a_claim_is_given_only_for_what_the_role_allows() -> None:
    assert permissions.claim(POLICY, "mona", "act") == Claim(role="manager", team="east")
    with pytest.raises(AccessDenied) as denied:
        permissions.claim(POLICY, "ada", "deploy")
    assert denied.value.message == "ada is auditor: may read, not deploy"
    with pytest.raises(AccessDenied) as unknown:
        permissions.claim(POLICY, "zed", "read")
    assert unknown.value.message == "'zed' is not a known identity (access.yaml)"


@pytest.mark.parametrize(
    ("actor", "owner", "why"),
    [
        ("rita", "rita", None),
        ("rita", "ben", "rita is a rep: a rep starts deals they own"),
        ("mona", "rita", None),
        ("mona", "ben", "mona manages team east; ben is not in it"),
    ],
)
def test_who_starts_a_deal_for_whom(actor: str, owner: str, why: str | None) -> None:
    claim = permissions.claim(POLICY, actor, "start")
    assert permissions.start_refusal(POLICY, actor, owner, claim) == why


@pytest.mark.parametrize(
    ("actor", "target", "why"),
    [
        ("olga", "mona", None),
        ("mona", "rita", None),
        ("rita", "rita", "rita is rep: only ops and managers make tokens"),
        ("mona", "olga", "olga is ops, a role above mona's (manager)"),
        ("mona", "ben", "mona manages team east; ben is not in it (west)"),
        ("zed", "rita", "'zed' is not an identity of the access configuration (/srv/home/access.yaml)"),
        ("olga", "zed", "'zed' is not an identity of the access configuration"),
    ],
)
def test_who_makes_tokens_for_whom(actor: str, target: str, why: str | None) -> None:
    assert permissions.issue_refusal(POLICY, actor, target) == why


def test_what_a_claim_may_do_to_one_deal_is_the_rule_the_deal_runs() -> None:
    deal = DealState(deal_id="d1", process="p", version="v", owner="rita", stage="s", team="east")
    rep, manager, ops = Claim(role="rep", team="west"), Claim(role="manager", team="east"), Claim(role="ops")
    assert permissions.deal_refusal(Claim(role="rep", team="east"), "rita", "act", deal) is None
    assert permissions.deal_refusal(rep, "ben", "act", deal) == "ben is a rep and deal d1 is owned by rita"
    assert permissions.deal_refusal(manager, "mona", "act", deal) is None
    assert permissions.deal_refusal(ops, "olga", "act", deal) == (
        "olga is ops: deal actions belong to the deal's rep and their manager"
    )
    assert permissions.deal_refusal(ops, "olga", "migrate", deal) is None
    assert permissions.deal_refusal(None, "anyone", "act", deal) is None
