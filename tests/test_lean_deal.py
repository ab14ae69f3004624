"""Revisions 2 and 3 of the deal workflow: events gathered per append within a flush window, an
outcome appended before the rep's call returns, search attributes following each append, and a
cadence child launched only when its first touch is due.

On the real dev server, with the session's worker and the event log in real PostgreSQL.
"""

from __future__ import annotations

import random
from dataclasses import replace

import asyncpg
import pytest
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from audit.history import append_receipt
from client.api import DealflowClient
from client.demo import fact_value
from definitions.loader import PinnedDefinition
from domain.activity_io import APPEND_EVENTS
from domain.commands import workflow_id
from domain.events import CadenceStarted, CadenceStopped, TouchScheduled, TouchSent
from store import event_log
from tests.support import logged, new_deal_id, wait_for
from worker.settings import LOG_FLUSH_ENV_VAR, Settings, SettingsError
from workflows.deal import DEAL_STAGE

pytestmark = pytest.mark.usefixtures("deployed", "worker")

FIELDS = {"customer": "Kunde AS", "title": "Lean deal", "contact": "buyer@kunde.example"}


async def appends(temporal: Client, deal_id: str) -> tuple[int, int]:
    """How many event-log appends the deal's workflow made: as activities of their own, and
    inside its workflow tasks (local activities, as outcomes are appended from revision 3)."""
    history = await temporal.get_workflow_handle(workflow_id(deal_id)).fetch_history()
    background = sum(
        1
        for e in history.events
        if e.HasField("activity_task_scheduled_event_attributes")
        and e.activity_task_scheduled_event_attributes.activity_type.name == APPEND_EVENTS
    )
    return background, sum(1 for e in history.events if append_receipt(e) is not None)


@pytest.mark.parametrize(("window", "batched"), [(30.0, True), (0.0, False)])
async def test_actions_within_the_flush_window_share_one_append(
    temporal_client: Client,
    pool: asyncpg.Pool,
    settings: Settings,
    deployed: dict[str, PinnedDefinition],
    window: float,
    batched: bool,
) -> None:
    client = DealflowClient(temporal_client, pool, replace(settings, log_flush_seconds=window))
    d = deployed["seven-stage"].definition
    rng = random.Random(7)
    deal = new_deal_id("batch")
    await client.start_deal("seven-stage", deal, "rita", value=1000, fields=FIELDS)
    for stage in d.pre_sale[:3]:
        facts = {f.fact: fact_value(f, rng) for f in stage.exit_criteria}
        await client.complete_stage(deal, stage.id, actor="rita", facts=facts)
    lost = await client.lose(deal, "no-budget", actor="rita")
    if batched:
        # with no append on its way already, an outcome is in the log, and in the projection,
        # by the time the rep's call returns
        assert await event_log.count(pool, deal) == lost.last_seq
    else:
        await logged(pool, deal, lost.last_seq)
    row = await pool.fetchrow("SELECT stage, status FROM deals WHERE deal_id = $1", deal)
    assert row is not None and (row["stage"], row["status"]) == (None, "lost")  # a closed deal is at no stage

    assert await event_log.read(pool, deal) == await client.events(deal)
    background, in_task = await appends(temporal_client, deal)
    assert in_task == 1  # the loss's batch, inside the rep's workflow task
    if batched:  # start and three completions gathered, sent with the loss
        assert background == 0
    else:  # an append as soon as there is anything to append (actions made while one is on its
        # way to the database go in the next): one to four for the start and three completions
        assert 1 <= background <= 4


async def test_a_lone_action_reaches_the_log_and_the_index_within_its_window(
    temporal_client: Client, pool: asyncpg.Pool, settings: Settings
) -> None:
    client = DealflowClient(temporal_client, pool, replace(settings, log_flush_seconds=0.5))
    deal = new_deal_id("lone")
    await client.start_deal("seven-stage", deal, "rita", fields=FIELDS)
    await logged(pool, deal, 2)  # the start, by the flush timer
    # an action that starts nothing and moves no reminder: the deal must still wake to append it
    replied = await client.record_response(deal, actor="rita", kind="replied", note="call me")
    await logged(pool, deal, replied.last_seq)
    assert await event_log.read(pool, deal) == await client.events(deal)

    moved = await client.complete_stage(deal, "prospecting", actor="rita", facts={"need": "CRM", "can_afford": "yes"})
    await logged(pool, deal, moved.last_seq)
    handle = temporal_client.get_workflow_handle(workflow_id(deal))

    async def indexed() -> bool:
        return (await handle.describe()).typed_search_attributes.get(DEAL_STAGE) == "preparation"

    await wait_for(indexed)
    await client.lose(deal, "timing", actor="rita")


async def test_a_cadence_stopped_before_its_first_touch_never_starts_a_child(
    temporal_client: Client, client: DealflowClient, pool: asyncpg.Pool
) -> None:
    deal = new_deal_id("lazy")
    await client.start_deal("crash", deal, "kim", fields=FIELDS)  # first touch due in an hour

    async def scheduled() -> bool:
        return any(isinstance(e, TouchScheduled) for e in await client.events(deal))

    await wait_for(scheduled)
    replied = await client.record_response(deal, actor="kim", kind="replied")
    await logged(pool, deal, replied.last_seq + 1)  # and the stop it caused

    events = await client.events(deal)
    started = next(e for e in events if isinstance(e, CadenceStarted))
    touch = next(e for e in events if isinstance(e, TouchScheduled))
    stopped = next(e for e in events if isinstance(e, CadenceStopped))
    assert started.cadence_run == touch.cadence_run == stopped.cadence_run
    assert touch.touch_no == 1 and (touch.due_at - started.at).total_seconds() == 3600
    assert stopped.reason == "replied" and stopped.seq == replied.last_seq + 1
    with pytest.raises(RPCError) as missing:
        await temporal_client.get_workflow_handle(started.cadence_run).describe()
    assert missing.value.status == RPCStatusCode.NOT_FOUND
    assert (await client.status(deal)).state.cadence is None
    await client.lose(deal, "gave-up", actor="kim")


async def test_a_pending_cadence_launches_its_child_when_the_first_touch_is_due(
    temporal_client: Client, client: DealflowClient, pool: asyncpg.Pool
) -> None:
    deal = new_deal_id("launch")
    await client.start_deal("crash", deal, "kim", fields=FIELDS, time_scale=0.001)  # an hour: 3.6 s

    async def first_touch_sent() -> bool:
        return any(isinstance(e, TouchSent) and e.touch_no == 1 for e in await client.events(deal))

    await wait_for(first_touch_sent, timeout=30)
    events = await client.events(deal)
    assert [e.touch_no for e in events if isinstance(e, TouchScheduled)][:2] == [1, 2]  # 1 once, by the deal
    run = next(e for e in events if isinstance(e, CadenceStarted)).cadence_run
    child = await temporal_client.get_workflow_handle(run).describe()
    assert child.parent_id == workflow_id(deal)
    lost = await client.lose(deal, "gave-up", actor="kim")
    await logged(pool, deal, lost.last_seq)


def test_the_flush_window_is_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(LOG_FLUSH_ENV_VAR, "0.5")
    assert Settings.resolve().log_flush_seconds == 0.5
    for bad in ("soon", "-1", "61", "nan"):
        monkeypatch.setenv(LOG_FLUSH_ENV_VAR, bad)
        with pytest.raises(SettingsError, match=LOG_FLUSH_ENV_VAR):
            Settings.resolve()
    monkeypatch.delenv(LOG_FLUSH_ENV_VAR)
    assert Settings.resolve().log_flush_seconds is None
