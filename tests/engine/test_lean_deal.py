"""The lean deal workflow: events gathered per append within a flush window, a start and an
outcome in the log before the call that made them returns (every append an activity of its own),
search attributes following each append, and a cadence child launched only when its first touch
is due.

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
from cli.demo import fact_value
from client.api import DealflowClient
from definitions.loader import PinnedDefinition
from domain.activity_io import APPEND_EVENTS
from domain.commands import workflow_id
from domain.events import CadenceStarted, CadenceStopped, TouchScheduled, TouchSent
from store import event_log
from tests.support import logged, new_deal_id, wait_for
from worker.settings import LOG_FLUSH_ENV_VAR, Settings, SettingsError
from workflows.search_attributes import DEAL_STAGE

pytestmark = pytest.mark.usefixtures("deployed", "worker")

FIELDS = {"customer": "Kunde AS", "title": "Lean deal", "contact": "buyer@kunde.example"}


async def appends(temporal: Client, deal_id: str) -> tuple[int, int]:
    """How many event-log appends the deal's workflow made: as activities of their own, and
    inside its workflow tasks (local activities, which revision 3 used for outcomes and which
    the log, being append-only, no longer allows)."""
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
    # an outcome is in the log, and in the projection, by the time the rep's call returns
    logged_now = {e.seq: e for e in await event_log.read(pool, deal)}
    assert type(logged_now[lost.last_seq]).__name__ == "DealLost"
    assert set(logged_now) >= set(range(1, lost.last_seq + 1))
    row = await pool.fetchrow("SELECT stage, status FROM deals WHERE deal_id = $1", deal)
    assert row is not None and (row["stage"], row["status"]) == (None, "lost")  # a closed deal is at no stage

    background, in_task = await appends(temporal_client, deal)
    assert in_task == 0  # never inside a workflow task: the log only takes what Temporal recorded
    if batched:  # the start at once; three completions gathered, sent with the loss
        assert background == 2
    else:  # an append as soon as there is anything to append (actions made while one is on its
        # way to the database go in the next): the start at once, then one to three for the
        # three completions, and the loss
        assert 3 <= background <= 5


async def test_a_lone_action_reaches_the_log_and_the_index_within_its_window(
    temporal_client: Client, pool: asyncpg.Pool, settings: Settings
) -> None:
    client = DealflowClient(temporal_client, pool, replace(settings, log_flush_seconds=0.5))
    deal = new_deal_id("lone")
    await client.start_deal("seven-stage", deal, "rita", fields=FIELDS)
    assert await event_log.count(pool, deal) == 2  # the start, before start_deal returned
    # an action that starts nothing and moves no reminder: the deal must still wake to append it
    replied = await client.record_response(deal, actor="rita", kind="replied", note="call me")
    await logged(pool, deal, replied.last_seq)

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
