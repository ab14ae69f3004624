"""Rebuy follow-on deals: scheduled when a deal is won, started after the definition's delay as
deals of their own, linked both ways, and followed per customer across deals."""

from __future__ import annotations

import json
import uuid

import asyncpg
import pytest
from temporalio.client import WorkflowExecutionStatus

from client.api import DealflowClient, Refused
from definitions.loader import PinnedDefinition
from domain.commands import workflow_id
from domain.events import DealStarted, FollowOnScheduled, FollowOnStarted
from tests.support import wait_for
from tests.support.cli import dealflow

SCALE = 0.0005  # 2 hours -> 3.6 s, 4 hours -> 7.2 s


async def test_a_won_deal_starts_its_follow_ons_after_their_delays(
    client: DealflowClient, pool: asyncpg.Pool, deployed: dict[str, PinnedDefinition], cli_env: dict[str, str]
) -> None:
    deal_id = f"sub-{uuid.uuid4().hex[:8]}"
    customer = f"Nordlys {deal_id}"
    await client.start_deal(
        "subscriptions", deal_id, "rita", value=1200, fields={"customer": customer}, time_scale=SCALE
    )
    await client.complete_stage(deal_id, "offer", actor="rita")

    before = await client.events(deal_id)
    with pytest.raises(Refused) as refused:
        await client.win(deal_id, actor="rita", rebuy=["side-selling"])
    assert refused.value.code == "unknown_rebuy" and "it offers: up-selling, cross-selling" in refused.value.message
    assert await client.events(deal_id) == before

    await client.win(deal_id, actor="rita", rebuy=["cross-selling"])
    # the post-sale stage asks for the rebuy intent; answering it schedules the up-sell from now
    answered = await client.complete_stage(deal_id, "onboarding", actor="rita", facts={"rebuy_intent": "up-selling"})
    scheduled = [e for e in await client.events(deal_id, min_seq=answered.last_seq) if isinstance(e, FollowOnScheduled)]
    assert [(e.kind, e.process) for e in scheduled] == [
        ("cross-selling", "seven-stage"),
        ("up-selling", "subscriptions"),
    ]
    assert [round((e.due_at - e.at).total_seconds()) for e in scheduled] == [4 * 3600, 2 * 3600]

    async def both_started() -> bool:
        return sum(isinstance(e, FollowOnStarted) for e in await client.events(deal_id)) == 2

    await wait_for(both_started, timeout=40)
    started = {e.kind: e for e in await client.events(deal_id) if isinstance(e, FollowOnStarted)}
    assert started["up-selling"].deal_id == f"{deal_id}.up-selling"
    assert (started["cross-selling"].deal_id, started["cross-selling"].process) == (
        f"{deal_id}.cross-selling",
        "seven-stage",
    )
    assert started["up-selling"].version == deployed["subscriptions"].version
    for kind, follow_on in started.items():
        first = (await client.events(follow_on.deal_id))[0]
        assert isinstance(first, DealStarted)
        assert (first.follows, first.follow_kind, first.owner, first.fields["customer"]) == (
            deal_id,
            kind,
            "rita",
            customer,
        )

    # with nothing left to start, the won deal's workflow ends
    async def ended() -> bool:
        described = await client.temporal.get_workflow_handle(workflow_id(deal_id)).describe()
        return described.status == WorkflowExecutionStatus.COMPLETED

    await wait_for(ended, timeout=20)

    async def projected() -> bool:
        n = await pool.fetchval("SELECT count(*) FROM deals WHERE customer = $1", customer)
        return bool(n == 3)

    await wait_for(projected)

    # each deal of the chain verifies against its own history: the follow-ons are child workflows
    # of the won deal, and their events are never taken for the parent's
    family = [deal_id, f"{deal_id}.up-selling", f"{deal_id}.cross-selling"]
    verified = await dealflow(cli_env, "audit", "verify", *family, "--json")
    assert verified.code == 0, verified.out + verified.err
    assert [(v["deal_id"], v["ok"], v["findings"]) for v in verified.json()] == [(d, True, []) for d in family]
    chain = json.loads((await dealflow(cli_env, "deal", "chain", f"{deal_id}.up-selling", "--json")).out)
    # the up-sell came due first (2 hours after onboarding, against 4 after the win)
    assert [(d["deal_id"], d["depth"], d["follows"]) for d in chain] == [
        (deal_id, 0, None),
        (f"{deal_id}.up-selling", 1, deal_id),
        (f"{deal_id}.cross-selling", 1, deal_id),
    ]
    table = (await dealflow(cli_env, "deal", "chain", deal_id)).out
    assert f"  {deal_id}.up-selling" in table

    summary = json.loads((await dealflow(cli_env, "metrics", "customers", "--json")).out)
    mine = next(s for s in summary if s["customer"] == customer)
    assert (mine["deals"], mine["won"], mine["open"], mine["follow_ons"], mine["won_value"]) == (3, 1, 2, 2, 1200.0)
    assert mine["processes"] == ["seven-stage", "subscriptions"]
    missing = await dealflow(cli_env, "deal", "chain", "no-such-deal")
    assert missing.code == 1 and "no deal 'no-such-deal'" in missing.err
