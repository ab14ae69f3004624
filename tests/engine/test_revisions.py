"""Retiring a revision of the deal workflow (docs/revisions.md): a run of a retired revision waits
unharmed, and `dealflow revisions upgrade` moves running deals to the latest revision."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowExecutionStatus

from cli.revision_commands import stragglers, upgrade
from client.api import DealflowClient
from definitions.loader import PinnedDefinition
from domain.commands import DealInput, StartDeal, workflow_id
from tests.support import new_deal_id, wait_for
from tests.support.cli import dealflow
from workflows.deal import DealWorkflow


async def test_a_run_of_a_retired_revision_fails_its_task_not_the_deal(
    client: DealflowClient, temporal_client: Client, task_queue: str, deployed: dict[str, PinnedDefinition]
) -> None:
    deal = new_deal_id("retired")
    start = StartDeal(deal_id=deal, owner="ola", actor="ola")
    handle = await temporal_client.start_workflow(
        DealWorkflow.run,
        DealInput(start=start, pinned=deployed["three-phase"], revision=1),
        id=workflow_id(deal),
        task_queue=task_queue,
    )

    async def task_failed() -> bool:
        history = await handle.fetch_history()
        return any(e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED for e in history.events)

    await wait_for(task_failed)
    history = await handle.fetch_history()
    failure = next(e for e in history.events if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED)
    assert "revision 1 is retired" in failure.workflow_task_failed_event_attributes.failure.message
    assert (await handle.describe()).status == WorkflowExecutionStatus.RUNNING
    await handle.terminate("test over")


async def test_upgrade_moves_running_deals_to_a_new_run_on_the_latest_revision(
    client: DealflowClient, temporal_client: Client, pool: asyncpg.Pool, deployed: dict[str, PinnedDefinition]
) -> None:
    deal = new_deal_id("upgrade")
    await client.start_deal("three-phase", deal, "ola")
    await client.complete_stage(deal, "first-contact", actor="ola", facts={"buying_process_started": True})
    handle = temporal_client.get_workflow_handle(workflow_id(deal))
    first_run = (await handle.describe()).run_id
    await asyncio.sleep(1)  # visibility times are in whole seconds here
    released_at = datetime.now(UTC)

    assert workflow_id(deal) in await stragglers(temporal_client, released_at)
    await upgrade(temporal_client, [workflow_id(deal)])

    async def continued() -> bool:
        return (await handle.describe()).run_id != first_run

    await wait_for(continued)
    described = await handle.describe()
    assert described.status == WorkflowExecutionStatus.RUNNING
    # the old run went quietly: no workflow task failed on its way to continue as new
    old_run = await temporal_client.get_workflow_handle(workflow_id(deal), run_id=first_run).fetch_history()
    assert [e for e in old_run.events if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED] == []
    assert workflow_id(deal) not in await stragglers(temporal_client, released_at)
    # the new run carries the whole deal on: its state and its requests
    status = await client.status(deal)
    assert status.state.stage == "demonstration" and status.state.last_seq == 4
    result = await client.lose(deal, "price", actor="ola")
    assert result.status == "lost" and result.first_seq == 5


@pytest.mark.usefixtures("deployed")
async def test_revisions_upgrade_command_lists_without_signalling_on_dry_run(
    client: DealflowClient, temporal_client: Client, cli_env: dict[str, str]
) -> None:
    deal = new_deal_id("dry")
    await client.start_deal("three-phase", deal, "ola")
    handle = temporal_client.get_workflow_handle(workflow_id(deal))
    run = (await handle.describe()).run_id
    await asyncio.sleep(1)
    later = (datetime.now(UTC) + timedelta(seconds=1)).isoformat()
    listed = await dealflow(cli_env, "revisions", "upgrade", "--started-before", later, "--dry-run", "--json")
    assert listed.code == 0, listed.err
    out = json.loads(listed.out)
    assert out["signalled"] is False and workflow_id(deal) in out["deals"]
    assert (await handle.describe()).run_id == run
    unreadable = await dealflow(cli_env, "revisions", "upgrade", "--started-before", "last tuesday")
    assert (
        unreadable.code == 2 and "argument --started-before: 'last tuesday': expected a date or time" in unreadable.err
    )
