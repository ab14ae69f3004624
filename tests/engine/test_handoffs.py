"""Handoffs between teams on the real servers: the deal workflow hands a deal over on entering a
team's stage, the choice activity keeps its choice per stage visit in PostgreSQL, and the new
owner gets the deal's notifications, reminders and escalations.

Each test deploys a process of its own name: round-robin turns and open-deal counts are kept per
process, so one test's deals never move another's rotation.
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
import yaml
from temporalio import activity
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment

from activities.handoffs import HandoffActivities
from client.api import DealflowClient
from definitions.loader import PinnedDefinition, load_text
from definitions.model import AssignRule, Team
from domain.activity_io import CHOOSE_OWNER, OwnerChoice, OwnerRequest
from domain.events import DealEvent, Escalated, HandedOff, ReminderSent
from store import assignments, registry
from store.deals import board
from tests.support import new_deal_id, wait_for
from tests.support.cli import dealflow
from worker.run import build_worker
from worker.settings import Settings

pytestmark = pytest.mark.usefixtures("deployed")

PROCESS: dict[str, Any] = {
    "name": "teams",
    "teams": [
        {"id": "openers", "members": ["alice", "bob"], "assign": "round-robin"},
        {"id": "closers", "members": ["carol", "dave", "erin"], "assign": "fewest-open"},
        {"id": "success", "members": ["frank", "grace"], "assign": "fixed", "person": "frank"},
    ],
    "phases": [
        {"id": "get-in", "title": "Get in", "team": "openers"},
        {"id": "close", "title": "Close", "team": "closers"},
        {"id": "after", "title": "After the sale", "team": "success"},
    ],
    "stages": [
        {"id": "contact", "title": "Contact", "phase": "get-in", "probability": 0.1},
        {"id": "qualify", "title": "Qualify", "phase": "get-in", "probability": 0.2},
        {"id": "negotiate", "title": "Negotiate", "phase": "close", "probability": 0.6},
        {"id": "onboard", "title": "Onboard", "phase": "after", "probability": 1.0, "post_sale": True},
    ],
    "outcomes": {"won": {}, "lost": {"reasons": ["price"]}},
}


async def deploy(pool: asyncpg.Pool, data: dict[str, Any] | None = None) -> PinnedDefinition:
    """`data` (the process above by default) under a name of the test's own."""
    data = copy.deepcopy(data or PROCESS)
    data["name"] = f"teams-{uuid.uuid4().hex[:8]}"
    pinned = load_text(yaml.safe_dump(data, sort_keys=False), source=f"{data['name']}.yaml")
    await registry.deploy(pool, pinned, deployed_by="tests")
    return pinned


async def handoffs_of(client: DealflowClient, deal: str, n: int = 1) -> list[HandedOff]:
    """The deal's HandedOff events, once the log holds at least `n` of them."""
    found: list[HandedOff] = []

    async def enough() -> bool:
        nonlocal found
        found = [e for e in await client.events(deal) if isinstance(e, HandedOff)]
        return len(found) >= n

    await wait_for(enough)
    return found


async def chosen(pool: asyncpg.Pool, deal: str) -> str:
    """The member chosen for the deal's first handoff, as soon as it is chosen (the log trails
    the deal by its flush window)."""

    async def made() -> bool:
        return bool(await pool.fetchval("SELECT count(*) = 1 FROM handoff_choices WHERE deal_id = $1", deal))

    await wait_for(made)
    return str(await pool.fetchval("SELECT to_owner FROM handoff_choices WHERE deal_id = $1", deal))


async def logged(client: DealflowClient, deal: str, kind: str, n: int = 1) -> list[DealEvent]:
    found: list[DealEvent] = []

    async def enough() -> bool:
        nonlocal found
        found = [e for e in await client.events(deal) if e.type == kind]
        return len(found) >= n

    await wait_for(enough, timeout=30)
    return found


async def test_entering_a_teams_stage_hands_the_deal_over_and_the_board_shows_the_new_owner(
    client: DealflowClient, pool: asyncpg.Pool
) -> None:
    p = await deploy(pool)
    deal = new_deal_id("hand")
    await client.start_deal(p.name, deal, "rita", fields={"customer": "Fjord AS"})
    # the start stage counts: rita is not an opener, so the deal goes to one at once
    [first] = await handoffs_of(client, deal)
    assert (first.seq, first.actor, first.stage, first.request_id) == (3, "dealflow", "contact", None)
    assert (first.from_owner, first.to_owner, first.team, first.rule) == ("rita", "alice", "openers", "round-robin")
    assert first.reason == (
        "stage contact belongs to team openers; rita is not in it; round-robin chose alice, who had no deal from"
        " this team yet"
    )
    await client.complete_stage(deal, "contact", actor="alice")
    await client.complete_stage(deal, "qualify", actor="alice")  # an opener's stage too: no handoff
    _, second = await handoffs_of(client, deal, 2)
    assert (second.stage, second.from_owner, second.to_owner, second.team, second.rule) == (
        "negotiate",
        "alice",
        "carol",
        "closers",
        "fewest-open",
    )
    assert second.reason.endswith("fewest-open chose carol with 0 open deals (dave 0, erin 0)")
    won = await client.win(deal, actor="carol")
    assert won.stage == "onboard"
    third = (await handoffs_of(client, deal, 3))[2]
    assert (third.stage, third.from_owner, third.to_owner, third.rule) == ("onboard", "carol", "frank", "fixed")
    assert third.reason == "stage onboard belongs to team success; carol is not in it; the team's fixed person is frank"

    state = await client.logged_state(deal, min_seq=third.seq)
    assert state.owner == "frank"
    [row] = await client.list_deals(process=p.name)
    assert (row.deal_id, row.owner, row.stage) == (deal, "frank", "onboard")
    cards = (await board(pool, p.name, {})).cards
    assert [(c.deal_id, c.owner) for c in cards] == [(deal, "frank")]

    # each new owner is told, once, under the key of the handoff's event
    async def told() -> list[tuple[str, str, str]]:
        rows = await pool.fetch(
            "SELECT effect_key, recipient, subject FROM outbox WHERE deal_id = $1 AND kind = 'notification'"
            " AND status = 'sent' ORDER BY created_at",
            deal,
        )
        return [(r["effect_key"], r["recipient"], r["subject"]) for r in rows]

    async def all_told() -> bool:
        return len(await told()) == 3

    await wait_for(all_told)
    assert await told() == [
        (f"notify/{first.seq}", "alice", f"Handed over to you: deal {deal} (Fjord AS) at contact"),
        (f"notify/{second.seq}", "carol", f"Handed over to you: deal {deal} (Fjord AS) at negotiate"),
        (f"notify/{third.seq}", "frank", f"Handed over to you: deal {deal} (Fjord AS) at onboard"),
    ]


async def test_no_handoff_when_the_owner_is_already_in_the_team(client: DealflowClient, pool: asyncpg.Pool) -> None:
    p = await deploy(pool)
    deal = new_deal_id("stay")
    await client.start_deal(p.name, deal, "bob")
    await client.complete_stage(deal, "contact", actor="bob")
    result = await client.move(deal, "contact", actor="bob", reason="one more call")  # re-entered: still bob's
    events = await client.events(deal, min_seq=result.last_seq)
    assert [e.type for e in events] == [
        "DealStarted",
        "StageEntered",
        "StageCompleted",
        "StageEntered",
        "MovedBack",
        "StageEntered",
    ]
    assert (await client.logged_state(deal)).owner == "bob"
    assert await pool.fetchval("SELECT count(*) FROM handoff_choices WHERE deal_id = $1", deal) == 0


async def test_round_robin_rotates_across_deals(client: DealflowClient, pool: asyncpg.Pool) -> None:
    p = await deploy(pool)
    owners = []
    for _ in range(5):
        deal = new_deal_id("rr")
        await client.start_deal(p.name, deal, "rita")
        owners.append(await chosen(pool, deal))
    assert owners == ["alice", "bob", "alice", "bob", "alice"]
    assert (await handoffs_of(client, deal))[0].to_owner == "alice"  # what was chosen is what is recorded


async def test_fewest_open_chooses_the_least_loaded_member(client: DealflowClient, pool: asyncpg.Pool) -> None:
    data = copy.deepcopy(PROCESS)
    data["phases"][0]["team"] = "closers"  # deals start with the closers
    p = await deploy(pool, data)
    for owner in ("carol", "carol", "dave"):  # members keep the deals they start: the load to balance
        await client.start_deal(p.name, new_deal_id("load"), owner)
    lost = new_deal_id("load")
    await client.start_deal(p.name, lost, "erin")
    await client.lose(lost, "price", actor="erin")  # a closed deal is no load
    owners = []
    for _ in range(3):
        deal = new_deal_id("few")
        await client.start_deal(p.name, deal, "rita")
        owners.append(await chosen(pool, deal))  # the next deal starts before this one's handoff is logged
    # carol 2, dave 1, erin 0 -> erin; then dave and erin tie at 1 and dave is listed first; then erin
    assert owners == ["erin", "dave", "erin"]
    handed = (await handoffs_of(client, deal))[0]
    assert handed.reason.endswith("fewest-open chose erin with 1 open deals (carol 2, dave 2)")


async def test_the_choice_is_kept_per_stage_visit_and_counts_choices_the_projection_lacks(pool: asyncpg.Pool) -> None:
    """The store alone: the same visit asked again gets the same member, and a choice whose deal
    the projection does not show yet still counts as that member's open deal."""
    process = f"store-{uuid.uuid4().hex[:8]}"
    team = Team(id="closers", members=["carol", "dave"], assign=AssignRule.fewest_open)

    def ask(deal: str, seq: int = 2) -> OwnerRequest:
        return OwnerRequest(deal_id=deal, entry_seq=seq, process=process, stage="s", team=team, from_owner="rita")

    first = await assignments.choose(pool, ask(f"{process}-1"))
    again = await assignments.choose(pool, ask(f"{process}-1"))
    assert (first.owner, first.repeated, again.owner, again.repeated) == ("carol", False, "carol", True)
    second = await assignments.choose(pool, ask(f"{process}-2"))
    assert second.owner == "dave"  # carol's deal is in no projection yet, and counts all the same
    revisit = await assignments.choose(pool, ask(f"{process}-1", seq=7))  # a later visit is a new choice
    assert (revisit.owner, revisit.repeated) == ("carol", False)
    rows = await pool.fetchval("SELECT count(*) FROM handoff_choices WHERE process = $1", process)
    assert rows == 3


class LosesItsReply(HandoffActivities):
    """The choice is made and committed, then the worker dies before Temporal hears of it."""

    answers: list[OwnerChoice] = []

    @activity.defn(name=CHOOSE_OWNER)
    async def choose_owner(self, request: OwnerRequest) -> OwnerChoice:
        choice = await super().choose_owner(request)
        LosesItsReply.answers.append(choice)
        if len(LosesItsReply.answers) == 1:
            raise RuntimeError("worker died before reporting the choice")
        return choice


class AlwaysFails(HandoffActivities):
    """The shared state cannot be read, and will not be."""

    @activity.defn(name=CHOOSE_OWNER)
    async def choose_owner(self, request: OwnerRequest) -> OwnerChoice:
        raise ApplicationError("the assignment tables are gone", type="Broken", non_retryable=True)


@pytest.fixture
async def own_queue(
    temporal_env: WorkflowEnvironment, pool: asyncpg.Pool, database_url: str, request: pytest.FixtureRequest
) -> AsyncIterator[DealflowClient]:
    """A worker of the test's own, whose choice activity is the class the test is parametrised with."""
    queue = f"handoff-{uuid.uuid4().hex[:6]}"
    activities: HandoffActivities = request.param(pool)
    async with build_worker(temporal_env.client, pool, queue, handoffs=activities):
        yield DealflowClient(temporal_env.client, pool, Settings(database_url=database_url, task_queue=queue))


@pytest.mark.parametrize("own_queue", [LosesItsReply], indirect=True)
async def test_a_retried_choice_gives_the_same_member_and_moves_the_rotation_once(
    own_queue: DealflowClient, pool: asyncpg.Pool
) -> None:
    client = own_queue
    p = await deploy(pool)
    deal = new_deal_id("retry")
    await client.start_deal(p.name, deal, "rita")
    [handed] = await handoffs_of(client, deal)
    assert [(a.owner, a.repeated) for a in LosesItsReply.answers] == [("alice", False), ("alice", True)]
    assert handed.to_owner == "alice"
    assert await pool.fetchval("SELECT count(*) FROM handoff_choices WHERE deal_id = $1", deal) == 1
    after = new_deal_id("retry")
    await client.start_deal(p.name, after, "rita")
    assert (await handoffs_of(client, after))[0].to_owner == "bob"


@pytest.mark.parametrize("own_queue", [AlwaysFails], indirect=True)
async def test_a_choice_that_fails_for_good_falls_back_to_the_deals_id_and_the_deal_goes_on(
    own_queue: DealflowClient, pool: asyncpg.Pool
) -> None:
    client = own_queue
    p = await deploy(pool)
    deal = new_deal_id("broken")
    await client.start_deal(p.name, deal, "rita")
    [handed] = await handoffs_of(client, deal)
    assert handed.to_owner in {"alice", "bob"} and handed.rule == "round-robin"
    assert handed.reason.endswith(
        f"the round-robin choice failed (the assignment tables are gone), so {handed.to_owner} was chosen from"
        " the deal's id"
    )
    result = await client.complete_stage(deal, "contact", actor=handed.to_owner)  # not stuck
    assert result.stage == "qualify"


async def test_reminders_and_escalations_after_a_handoff_go_to_the_new_owner(
    client: DealflowClient, pool: asyncpg.Pool
) -> None:
    data = copy.deepcopy(PROCESS)
    data["phases"][0]["team"] = "success"
    data["stages"][0]["reminder"] = {"deadline": "1 business day", "escalations": [{"after": "1 business day"}]}
    p = await deploy(pool, data)
    deal = new_deal_id("remind")
    # a business day passes in about 1.7 s (a weekend in about 3.5 s more)
    await client.start_deal(p.name, deal, "rita", time_scale=1 / 50_000)
    [handed] = await handoffs_of(client, deal)
    assert handed.to_owner == "frank"
    [escalated] = await logged(client, deal, "Escalated")
    [reminded] = await logged(client, deal, "ReminderSent")
    assert isinstance(reminded, ReminderSent) and isinstance(escalated, Escalated)
    assert handed.seq < reminded.seq < escalated.seq
    assert (reminded.to, escalated.to) == ("frank", "manager-of-frank")


async def test_a_migration_that_drops_the_owner_from_the_team_hands_the_deal_over(
    client: DealflowClient, pool: asyncpg.Pool
) -> None:
    """People leave by a new version: running deals migrated to it go to the members it lists."""
    v1 = await deploy(pool)
    data = copy.deepcopy(PROCESS)
    data["name"] = v1.name
    data["teams"][0]["members"] = ["nina", "olav"]  # alice and bob have left
    v2 = load_text(yaml.safe_dump(data, sort_keys=False), source="v2.yaml")
    await registry.deploy(pool, v2, deployed_by="tests")
    deal = new_deal_id("left")
    await client.start_deal(v1.name, deal, "rita", version=v1.version)
    assert (await handoffs_of(client, deal))[0].to_owner == "alice"
    plan = await client.plan_migration(v1.name, v1.version, v2.version)
    await client.migrate_deal(deal, plan, actor="olga")
    _, moved = await handoffs_of(client, deal, 2)
    assert (moved.stage, moved.from_owner, moved.to_owner) == ("contact", "alice", "nina")
    assert moved.reason == (
        "stage contact belongs to team openers; alice is not in it; round-robin chose nina, who had no deal from"
        " this team yet"
    )


async def test_definitions_show_names_each_team_its_rule_and_its_stages(cli_env: dict[str, str]) -> None:
    shown = await dealflow(cli_env, "definitions", "show", "sales-factory-teams")
    assert shown.code == 0, shown.err
    assert "team development (round-robin): alice, bob; owns suspect, qualifying\n" in shown.out
    assert "team account-executives (fewest-open): carol, dave, erin; owns funnel-top, funnel-middle," in shown.out
    assert "team customer-success (fixed: frank): frank, grace; owns customer\n" in shown.out
