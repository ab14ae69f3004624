"""The deal workflow on the real Temporal dev server, with the event log in real PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import pytest
from temporalio.client import Client, WorkflowUpdateFailedError
from temporalio.service import RPCError, RPCStatusCode

from client.api import DealflowClient, NotFound, Refused
from definitions.loader import PinnedDefinition
from domain.commands import workflow_id
from domain.state import DealState
from store import event_log
from tests.support import SEVEN_FACTS, logged, new_deal_id, wait_for

pytestmark = pytest.mark.usefixtures("deployed")


async def history_length(temporal: Client, deal_id: str) -> int:
    history = await temporal.get_workflow_handle(workflow_id(deal_id)).fetch_history()
    return len(history.events)


async def quiet_history_length(temporal: Client, deal_id: str) -> int:
    """The history's length once the deal has settled (its start events carried to the log)."""
    previous, stable = -1, 0
    while stable < 3:
        length = await history_length(temporal, deal_id)
        stable = stable + 1 if length == previous else 0
        previous = length
        await asyncio.sleep(0.1)
    return previous


async def test_seven_stage_deal_to_the_end_is_logged_exactly(
    client: DealflowClient, pool: asyncpg.Pool, temporal_client: Client, deployed: dict[str, PinnedDefinition]
) -> None:
    deal = new_deal_id()
    started = await client.start_deal("seven-stage", deal, "alice", value=12000, fields={"customer": "Acme"})
    assert started.stage == "prospecting" and started.process_ref == deployed["seven-stage"].ref
    for stage, facts in SEVEN_FACTS.items():
        result = await client.complete_stage(deal, stage, actor="alice", facts=facts)
    assert result.status == "won" and result.stage is None
    final = await temporal_client.get_workflow_handle(workflow_id(deal), result_type=DealState).result()
    assert final.status == "won" and final.is_finished  # the workflow has ended
    events = await client.events(deal)
    await logged(pool, deal, len(events))
    assert await event_log.read(pool, deal) == events  # same events, same order, same payloads
    rows = await client.list_deals(owner="alice", status="won")
    assert [r.last_seq for r in rows if r.deal_id == deal] == [len(events)]
    assert [e.type for e in events].count("StageEntered") == 7
    assert {e.actor for e in events if e.request_id} == {"alice"}  # every rep action
    assert {e.actor for e in events if not e.request_id and e.seq > 2} == {"dealflow"}  # the engine
    failed = [e for e in events if e.type == "ProposalFailed"]
    assert len(failed) == 1 and failed[0].missing == ["title"]
    assert [e.type for e in events if e.type.startswith("Cadence")] == ["CadenceStarted", "CadenceStopped"]


# name, request, code, message ("{deal}" is the deal's id)
RefusalCase = tuple[str, Callable[[DealflowClient, str], Awaitable[Any]], str, str]

REFUSALS: list[RefusalCase] = [
    (
        "missing facts",
        lambda c, d: c.complete_stage(d, "prospecting", actor="a", facts={"need": "x"}),
        "missing_facts",
        "cannot complete stage 'prospecting': missing can_afford (Can they afford it?)",
    ),
    (
        "invalid fact",
        lambda c, d: c.complete_stage(d, "prospecting", actor="a", facts={"need": "x", "can_afford": "eh"}),
        "invalid_fact",
        "invalid facts: can_afford: expected yes or no, got 'eh'",
    ),
    (
        "unknown fact",
        lambda c, d: c.complete_stage(d, "prospecting", actor="a", facts={"colour": "red"}),
        "unknown_fact",
        "stage 'prospecting' has no exit criterion named 'colour'; its facts are: need, can_afford",
    ),
    (
        "stale stage",
        lambda c, d: c.complete_stage(d, "closing", actor="a"),
        "stale_stage",
        "deal '{deal}' is at stage 'prospecting', not 'closing'",
    ),
    (
        "stale expected stage",
        lambda c, d: c.move(d, "presentation", actor="a", reason="r", expected_stage="closing"),
        "stale_stage",
        "deal '{deal}' is at stage 'prospecting', not 'closing'; refresh and retry",
    ),
    (
        "unknown stage",
        lambda c, d: c.move(d, "nowhere", actor="a"),
        "unknown_stage",
        "process 'seven-stage' has no stage 'nowhere'",
    ),
    (
        "move to next",
        lambda c, d: c.move(d, "preparation", actor="a"),
        "move_not_allowed",
        "'preparation' is the next stage: complete 'prospecting' instead",
    ),
    (
        "reason required",
        lambda c, d: c.move(d, "presentation", actor="a"),
        "reason_required",
        "skipping from 'prospecting' needs a reason",
    ),
    (
        "win not allowed",
        lambda c, d: c.win(d, actor="a"),
        "win_not_allowed",
        "a deal cannot be won from stage 'prospecting'; allowed from: closing",
    ),
    (
        "unknown lost reason",
        lambda c, d: c.lose(d, "bored", actor="a"),
        "unknown_reason",
        "'bored' is not a lost reason of 'seven-stage'; use one of: no-budget, no-need, chose-competitor,"
        " no-decision, timing, unresponsive",
    ),
    (
        "empty actor",
        lambda c, d: c.complete_stage(d, "prospecting", actor=""),
        "invalid_request",
        "invalid request: actor: String should have at least 1 character",
    ),
]


@pytest.mark.parametrize(("name", "act", "code", "message"), REFUSALS, ids=[r[0] for r in REFUSALS])
async def test_refusals_change_nothing(
    client: DealflowClient,
    temporal_client: Client,
    name: str,
    act: Callable[[DealflowClient, str], Awaitable[Any]],
    code: str,
    message: str,
) -> None:
    deal = new_deal_id()
    await client.start_deal("seven-stage", deal, "alice")
    before_history = await quiet_history_length(temporal_client, deal)
    before_events = await client.events(deal)
    with pytest.raises(Refused) as caught:
        await act(client, deal)
    assert caught.value.code == code
    assert caught.value.message == message.format(deal=deal)
    assert await history_length(temporal_client, deal) == before_history
    assert await client.events(deal) == before_events


async def test_malformed_update_payload_is_rejected_not_stuck(client: DealflowClient, temporal_client: Client) -> None:
    """A payload that is not a valid command (wrong fields, wrong types) from any client."""
    deal = new_deal_id()
    await client.start_deal("seven-stage", deal, "alice")
    handle = temporal_client.get_workflow_handle(workflow_id(deal))
    before = await quiet_history_length(temporal_client, deal)
    for payload in (
        {"request_id": "x", "actor": "a", "stage": "prospecting", "bogus": 1},
        {"request_id": "x", "actor": "a", "stage": ["not", "a", "string"]},
        "just a string",
    ):
        with pytest.raises(WorkflowUpdateFailedError):
            await handle.execute_update("complete_stage", payload, rpc_timeout=None)
    assert await history_length(temporal_client, deal) == before
    # the deal still works
    result = await client.complete_stage(deal, "prospecting", actor="a", facts=SEVEN_FACTS["prospecting"])
    assert result.stage == "preparation"


async def test_repeated_request_returns_first_result_and_records_nothing(
    client: DealflowClient, pool: asyncpg.Pool
) -> None:
    deal = new_deal_id()
    await client.start_deal("seven-stage", deal, "alice")
    first = await client.complete_stage(
        deal, "prospecting", actor="a", facts=SEVEN_FACTS["prospecting"], request_id="req-1"
    )
    again = await client.complete_stage(
        deal, "prospecting", actor="a", facts=SEVEN_FACTS["prospecting"], request_id="req-1"
    )
    assert again == first
    # later in the deal, the same request id still answers the same and records nothing
    await client.complete_stage(deal, "preparation", actor="a", facts=SEVEN_FACTS["preparation"])
    late = await client.complete_stage(
        deal, "prospecting", actor="a", facts=SEVEN_FACTS["prospecting"], request_id="req-1"
    )
    assert late == first
    events = await client.events(deal, min_seq=6)
    assert [e.seq for e in events] == list(range(1, 7))
    assert [e.request_id for e in events].count("req-1") == 2  # StageCompleted + StageEntered, once


async def test_lost_deal_ends_and_a_repeat_after_the_end_still_answers(
    client: DealflowClient, temporal_client: Client
) -> None:
    deal = new_deal_id()
    await client.start_deal("three-phase", deal, "bob")
    lost = await client.lose(deal, "price", actor="bob", note="too dear", request_id="lose-1")
    final = await temporal_client.get_workflow_handle(workflow_id(deal), result_type=DealState).result()
    assert final.status == "lost" and final.lost_reason == "price"
    assert await client.lose(deal, "price", actor="bob", request_id="lose-1") == lost
    with pytest.raises(Refused) as caught:
        await client.complete_stage(deal, "first-contact", actor="bob")
    assert caught.value.code == "deal_closed"


async def test_unknown_deal_and_process(client: DealflowClient) -> None:
    with pytest.raises(NotFound, match="no deal"):
        await client.complete_stage("no-such-deal", "x", actor="a")
    with pytest.raises(NotFound, match="no deal"):
        await client.status("no-such-deal")
    with pytest.raises(NotFound, match="no process 'nope' is deployed"):
        await client.start_deal("nope", new_deal_id(), "a")
    with pytest.raises(NotFound, match="has no deployed version"):
        await client.start_deal("seven-stage", new_deal_id(), "a", version="000000000000")


async def test_duplicate_deal_id_is_refused(client: DealflowClient) -> None:
    deal = new_deal_id()
    await client.start_deal("three-phase", deal, "bob")
    with pytest.raises(Refused) as caught:
        await client.start_deal("three-phase", deal, "bob")
    assert caught.value.code == "deal_exists"


async def test_deal_keeps_its_pinned_version_after_redeploy(
    client: DealflowClient, deployed: dict[str, PinnedDefinition], tmp_path: Any
) -> None:
    deal = new_deal_id()
    old = deployed["three-phase"]
    await client.start_deal("three-phase", deal, "bob")
    changed = tmp_path / "three-phase.yaml"
    from definitions.loader import PROCESSES_DIR

    text = (PROCESSES_DIR / "three-phase.yaml").read_text().replace("probability: 0.40", "probability: 0.45")
    changed.write_text(text)
    dep = await client.deploy(changed, deployed_by="ops")
    assert dep.created and dep.version != old.version
    assert not (await client.deploy(changed, deployed_by="ops")).created  # same content: no-op
    status = await client.status(deal)
    assert status.process_ref == old.ref
    newer = new_deal_id()
    started = await client.start_deal("three-phase", newer, "bob")
    assert started.process_ref == f"three-phase@{dep.version}"
    pinned = await client.start_deal("three-phase", new_deal_id(), "bob", version=old.version)
    assert pinned.process_ref == old.ref


async def test_search_attributes_follow_the_deal(client: DealflowClient, temporal_client: Client) -> None:
    deal = new_deal_id()
    await client.start_deal("seven-stage", deal, "carol")
    await client.complete_stage(deal, "prospecting", actor="carol", facts=SEVEN_FACTS["prospecting"])
    await client.move(deal, "presentation", actor="carol", reason="referral")

    async def found() -> bool:
        query = (
            f'WorkflowId = "{workflow_id(deal)}" AND DealStage = "presentation" AND DealOwner = "carol"'
            ' AND ProcessName = "seven-stage" AND DealStatus = "open"'
        )
        return [w.id async for w in temporal_client.list_workflows(query)] == [workflow_id(deal)]

    await wait_for(found)


async def test_projection_lists_by_stage(client: DealflowClient, pool: asyncpg.Pool) -> None:
    deals = [new_deal_id("proj") for _ in range(3)]
    for d in deals:
        await client.start_deal("fem-trinn", d, "dora")
    await client.complete_stage(
        deals[0], "kartlegging", actor="dora", facts={"beslutningstaker": "Kari", "budsjett": "9"}
    )
    await logged(pool, deals[0], 4)
    for d in deals[1:]:
        await logged(pool, d, 2)
    at_behov = {r.deal_id for r in await client.list_deals(stage="behov", process="fem-trinn")}
    at_start = {r.deal_id for r in await client.list_deals(stage="kartlegging", owner="dora")}
    assert at_behov & set(deals) == {deals[0]}  # other tests' deals may be listed too
    assert at_start & set(deals) == set(deals[1:])


async def test_an_unknown_workflow_is_not_found_which_the_client_maps_to_no_such_deal(temporal_client: Client) -> None:
    """`app.deal_workflows.deal_lookup` relies on Temporal answering NOT_FOUND for an unknown deal."""
    with pytest.raises(RPCError) as caught:
        await temporal_client.get_workflow_handle("deal-none").describe()
    assert caught.value.status == RPCStatusCode.NOT_FOUND


async def test_an_update_temporal_aborts_for_a_failed_workflow_task_is_sent_again(
    client: DealflowClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Temporal aborts an admitted update with FAILED_PRECONDITION when a workflow task of the
    deal fails (a signal racing the task's completion); the deal is running, so the client sends
    the update again under the same id instead of reporting the deal closed."""
    from temporalio.client import WorkflowHandle

    deal = new_deal_id("abort")
    await client.start_deal("seven-stage", deal, "alice", fields={"customer": "Acme"})
    real = WorkflowHandle.execute_update
    calls: list[str] = []

    async def aborted_once(self: WorkflowHandle[Any, Any], *args: Any, **kwargs: Any) -> Any:
        calls.append(kwargs["id"])
        if len(calls) == 1:
            raise RPCError("Unable to perform workflow execution update", RPCStatusCode.FAILED_PRECONDITION, b"")
        return await real(self, *args, **kwargs)

    monkeypatch.setattr(WorkflowHandle, "execute_update", aborted_once)
    result = await client.complete_stage(deal, "prospecting", actor="alice", facts=SEVEN_FACTS["prospecting"])
    assert result.stage == "preparation" and result.status == "open"
    assert len(calls) == 2 and calls[0] == calls[1] == result.request_id  # the same update, once applied
    events = await client.events(deal, min_seq=result.last_seq)
    assert [e.request_id for e in events].count(result.request_id) == len(range(result.first_seq, result.last_seq + 1))
    await client.lose(deal, "timing", actor="alice")


async def test_a_currency_fact_is_an_iso_4217_code(client: DealflowClient, pool: asyncpg.Pool) -> None:
    deal = new_deal_id("abroad")
    await client.start_deal("abroad", deal, "alice", value=900)
    for typed, words in [
        ("XYZ", "currency: XYZ is not an ISO 4217 currency code (such as EUR, NOK or USD), got 'XYZ'"),
        ("kroner", "currency: expected an ISO 4217 currency code of three letters, such as EUR, NOK or USD"),
    ]:
        with pytest.raises(Refused) as refused:
            await client.complete_stage(deal, "qualify", actor="alice", facts={"currency": typed, "seats": "4"})
        assert refused.value.code == "invalid_fact" and words in str(refused.value)
    assert await event_log.last_seq(pool, deal) <= 2, "a refusal records nothing"
    done = await client.complete_stage(deal, "qualify", actor="alice", facts={"currency": " nok", "seats": "4"})
    assert done.stage == "close"
    status = await client.status(deal, min_seq=done.last_seq)
    assert status.state.facts["qualify"] == {"currency": "NOK", "seats": 4}
    await client.lose(deal, "no-budget", actor="alice")
