"""Continue-as-new carries the whole state, forced by a low history limit on a dev server."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from client.api import DealflowClient
from definitions.loader import PinnedDefinition
from domain.commands import workflow_id
from domain.events import TouchSent
from store import event_log
from tests.support import new_deal_id, wait_for
from worker.devserver import temporal_binary
from worker.run import build_worker
from worker.settings import Settings
from workflows.search_attributes import SEARCH_ATTRIBUTES

SUGGEST_AFTER = 40  # history events; a deal run to the end makes several times this


@pytest.fixture(scope="module")
async def small_history_env() -> AsyncIterator[WorkflowEnvironment]:
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=temporal_binary(),
        data_converter=pydantic_data_converter,
        search_attributes=list(SEARCH_ATTRIBUTES),
        dev_server_log_level="error",
        dev_server_extra_args=["--dynamic-config-value", f"limit.historyCount.suggestContinueAsNew={SUGGEST_AFTER}"],
    )
    yield env
    await env.shutdown()


async def test_state_survives_continue_as_new(
    small_history_env: WorkflowEnvironment, pool: asyncpg.Pool, database_url: str, deployed: dict[str, PinnedDefinition]
) -> None:
    queue = f"can-{uuid.uuid4().hex[:6]}"
    settings = Settings(database_url=database_url, task_queue=queue)
    client = DealflowClient(small_history_env.client, pool, settings)
    async with build_worker(small_history_env.client, pool, queue):
        deal = new_deal_id("can")
        await client.start_deal("nine-stage", deal, "erin", value=10, fields={"customer": "Kunde AS"})
        handle = small_history_env.client.get_workflow_handle(workflow_id(deal))
        first_run = (await handle.describe()).run_id
        results = []
        # back and forth many times: far more history than the limit
        for i in range(12):
            results.append(await client.complete_stage(deal, "s1", actor="erin", request_id=f"c1-{i}"))
            results.append(await client.move(deal, "s1", actor="erin", reason=f"again {i}", request_id=f"b-{i}"))
        for stage in ["s1", "s2", "s3", "s4", "s5"]:
            await client.complete_stage(deal, stage, actor="erin")

        async def continued() -> bool:
            # the deal continues as new at the first lull: once every event is persisted
            return (await handle.describe()).run_id != first_run

        await wait_for(continued)
        status = await client.status(deal)
        state = status.state
        assert state.stage == "s6" and state.visits["s1"] == 13 and state.visits["s2"] == 13
        assert state.fields == {"customer": "Kunde AS"} and state.owner == "erin"
        events = await client.events(deal)
        assert [e.seq for e in events] == list(range(1, state.last_seq + 1))
        # a request made before continue-as-new is still answered from the record
        assert await client.complete_stage(deal, "s1", actor="erin", request_id="c1-0") == results[0]
        assert (await client.events(deal)) == events

        async def all_logged() -> bool:
            return await event_log.count(pool, deal) == state.last_seq

        await wait_for(all_logged)
        assert await event_log.read(pool, deal) == events
        await client.win(deal, actor="erin")
        assert (await client.status(deal)).state.status == "won"


async def test_a_pending_cadence_is_carried_across_continue_as_new(
    small_history_env: WorkflowEnvironment, pool: asyncpg.Pool, database_url: str, deployed: dict[str, PinnedDefinition]
) -> None:
    """The cadence is started, its first touch not yet due, when the deal continues as new: the
    new run launches the child when the touch falls due."""
    queue = f"can-{uuid.uuid4().hex[:6]}"
    client = DealflowClient(small_history_env.client, pool, Settings(database_url=database_url, task_queue=queue))
    async with build_worker(small_history_env.client, pool, queue):
        deal = new_deal_id("can-cad")
        # the first touch is an hour after the start: 14.4 s at this scale
        await client.start_deal("crash", deal, "kim", fields={"customer": "Kunde AS"}, time_scale=0.004)
        handle = small_history_env.client.get_workflow_handle(workflow_id(deal))
        first_run = (await handle.describe()).run_id
        for i in range(8):  # far more history than the limit, all before the touch is due
            await client.complete_stage(deal, "call", actor="kim", request_id=f"c-{i}")
            await client.move(deal, "call", actor="kim", reason=f"again {i}", request_id=f"b-{i}")

        async def continued() -> bool:
            return (await handle.describe()).run_id != first_run

        await wait_for(continued)
        first = await small_history_env.client.get_workflow_handle(workflow_id(deal), run_id=first_run).fetch_history()
        assert not any(e.HasField("start_child_workflow_execution_initiated_event_attributes") for e in first.events)

        async def first_touch_sent() -> bool:
            return any(isinstance(e, TouchSent) and e.touch_no == 1 for e in await client.events(deal))

        await wait_for(first_touch_sent, timeout=40)
        lost = await client.lose(deal, "gave-up", actor="kim")

        async def all_logged() -> bool:
            return await event_log.count(pool, deal) >= lost.last_seq

        await wait_for(all_logged)
