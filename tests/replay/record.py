"""Record the replay corpus: one history per behaviour, replayed by the test suite.

Run it when a new behaviour should be protected (after adding a scenario below):

    .venv/bin/python -m tests.replay.record [SCENARIO ...]   # all of them, or only those named

It starts its own PostgreSQL, a time-skipping test server (reminders and cadences take weeks)
and a dev server with a low continue-as-new threshold, drives each scenario through the real
client and worker, and writes every workflow history the scenario produced (the deal's runs and
its cadences) to `tests/replay/histories/<scenario>--<workflow id>.json`. Existing files are
kept: a history recorded by older code is exactly what must keep replaying.
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
import tempfile
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path

import asyncpg
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.api.testservice.v1 import SleepRequest
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.channels.config import ChannelRegistry, ChannelsConfig
from activities.event_log import EventLogActivities
from activities.follow_ons import FollowOnActivities
from activities.handoffs import HandoffActivities
from activities.messages import MessageActivities
from activities.proposals import ProposalActivities
from audit.history import fetch_deal, to_json
from client.api import DealflowClient
from definitions.loader import load_file, shipped
from store import registry
from store.db import connect_pool
from store.embedded import EmbeddedPostgres
from store.migrations import migrate
from tests.support import SEVEN_FACTS
from worker.devserver import SEARCH_ATTRIBUTE_TYPES, temporal_binary, test_server_binary
from worker.run import WORKFLOWS
from worker.settings import Settings
from workflows.search_attributes import SEARCH_ATTRIBUTES

HERE = Path(__file__).parent
OUT = HERE / "histories"
SEVEN = SEVEN_FACTS
FIELDS = {"customer": "Acme", "title": "CRM rollout", "contact": "buyer@acme.example"}

Scenario = Callable[[DealflowClient, Callable[[timedelta], Awaitable[None]]], Awaitable[str]]


async def normal_path(c: DealflowClient, skip: Callable[[timedelta], Awaitable[None]]) -> str:
    await c.start_deal("seven-stage", "rec-normal", "alice", value=5000, fields=FIELDS)
    for stage, facts in SEVEN.items():
        await c.complete_stage("rec-normal", stage, actor="alice", facts=facts)
        await skip(timedelta(hours=2))
    return "rec-normal"


async def skips(c: DealflowClient, skip: Callable[[timedelta], Awaitable[None]]) -> str:
    await c.start_deal("seven-stage", "rec-skips", "bob", fields=FIELDS)
    await c.complete_stage("rec-skips", "prospecting", actor="bob", facts=SEVEN["prospecting"])
    await c.move("rec-skips", "presentation", actor="bob", reason="warm referral")
    await c.complete_stage("rec-skips", "presentation", actor="bob", facts=SEVEN["presentation"])
    await c.complete_stage("rec-skips", "objection-handling", actor="bob", facts=SEVEN["objection-handling"])
    await c.win("rec-skips", actor="bob", facts=SEVEN["closing"])
    return "rec-skips"


async def back_moves(c: DealflowClient, skip: Callable[[timedelta], Awaitable[None]]) -> str:
    await c.start_deal("three-phase", "rec-back", "carol", fields=FIELDS)
    await c.complete_stage("rec-back", "first-contact", actor="carol", facts={"buying_process_started": "yes"})
    await c.complete_stage(
        "rec-back", "demonstration", actor="carol", facts={"will_buy": "yes", "decision_maker": "Ann"}
    )
    await c.move("rec-back", "demonstration", actor="carol", reason="new stakeholder")
    await c.move("rec-back", "first-contact", actor="carol", reason="restart")
    await c.complete_stage("rec-back", "first-contact", actor="carol")
    return "rec-back"


async def lost(c: DealflowClient, skip: Callable[[timedelta], Awaitable[None]]) -> str:
    await c.start_deal("sales-factory", "rec-lost", "dave", fields=FIELDS)
    await c.complete_stage("rec-lost", "suspect", actor="dave", facts={"source": "inbound"})
    await c.lose("rec-lost", "no-active-need", actor="dave", note="budget frozen")
    return "rec-lost"


async def reminders(c: DealflowClient, skip: Callable[[timedelta], Awaitable[None]]) -> str:
    await c.start_deal("chase", "rec-remind", "olav", fields=FIELDS)
    await skip(timedelta(days=14))
    await c.complete_stage("rec-remind", "qualify", actor="maria")  # the reassigned owner acts
    return "rec-remind"


async def cadence_reply(c: DealflowClient, skip: Callable[[timedelta], Awaitable[None]]) -> str:
    await c.start_deal("chase", "rec-cadence", "olav", value=1200, fields=FIELDS)
    await c.complete_stage("rec-cadence", "qualify", actor="olav")
    await skip(timedelta(days=6, hours=12))
    await c.record_response("rec-cadence", actor="olav", kind="replied", note="call me")
    await skip(timedelta(days=2))
    await c.complete_stage("rec-cadence", "propose", actor="olav", facts={"decision_maker": "Kari"})
    await c.win("rec-cadence", actor="olav")
    return "rec-cadence"


async def continue_as_new(c: DealflowClient, skip: Callable[[timedelta], Awaitable[None]]) -> str:
    await c.start_deal("nine-stage", "rec-can", "erin", fields=FIELDS)
    for i in range(8):
        await c.complete_stage("rec-can", "s1", actor="erin", request_id=f"c-{i}")
        await c.move("rec-can", "s1", actor="erin", reason=f"again {i}", request_id=f"b-{i}")
    for stage in ["s1", "s2", "s3", "s4", "s5"]:
        await c.complete_stage("rec-can", stage, actor="erin")
    await asyncio.sleep(3)  # let it continue as new at the lull
    await c.win("rec-can", actor="erin")
    return "rec-can"


async def migration(c: DealflowClient, skip: Callable[[timedelta], Awaitable[None]]) -> str:
    versions = [load_file(HERE.parent / "processes" / "versions" / f"orders-{v}.yaml") for v in ("v1", "v2")]
    for pinned in versions:
        await registry.deploy(c.pool, pinned, deployed_by="recorder")
    v1, v2 = (p.version for p in versions)
    await c.start_deal("orders", "rec-migrate", "rita", version=v1, fields=FIELDS)
    await c.complete_stage("rec-migrate", "lead", actor="rita")
    await c.complete_stage("rec-migrate", "discovery", actor="rita", facts={"need": "invoicing"})
    await c.complete_stage("rec-migrate", "demo", actor="rita")
    plan = await c.plan_migration("orders", v1, v2, {"demo": "solution"})
    await c.migrate_deal("rec-migrate", plan, actor="olga")  # at negotiate, which gains a cadence in v2
    await skip(timedelta(days=3))
    await c.complete_stage("rec-migrate", "negotiate", actor="rita")
    await c.win("rec-migrate", actor="rita")
    return "rec-migrate"


async def follow_ons(c: DealflowClient, skip: Callable[[timedelta], Awaitable[None]]) -> str:
    await c.start_deal("subscriptions", "rec-follow", "rita", value=900, fields=FIELDS)
    await c.complete_stage("rec-follow", "offer", actor="rita")
    await c.win("rec-follow", actor="rita", rebuy=["cross-selling"])
    await c.complete_stage("rec-follow", "onboarding", actor="rita", facts={"rebuy_intent": "up-selling"})
    await skip(timedelta(hours=5))
    return "rec-follow"


async def public_holidays(c: DealflowClient, skip: Callable[[timedelta], Awaitable[None]]) -> str:
    """seven-stage pins Norway's holidays: the deal's ladder and its cadence's input carry the
    dates (recorded in December 2026, so the six touches run across Christmas)."""
    await c.start_deal("seven-stage", "rec-holidays", "alice", fields=FIELDS)
    for stage in ("prospecting", "preparation", "needs-assessment", "presentation"):
        await c.complete_stage("rec-holidays", stage, actor="alice", facts=SEVEN[stage])
    await skip(timedelta(days=40))
    await c.complete_stage("rec-holidays", "objection-handling", actor="alice", facts=SEVEN["objection-handling"])
    await c.win("rec-holidays", actor="alice", facts=SEVEN["closing"])
    return "rec-holidays"


async def handoffs(c: DealflowClient, skip: Callable[[timedelta], Awaitable[None]]) -> str:
    """sales-factory-teams: rita starts the deal on a business developers' stage, so it is handed
    over at once (round-robin, an activity); qualifying's reminder goes to the new owner; the
    funnel goes to an account executive (fewest-open, an activity) and the customer to customer
    success's fixed person (no activity). Each new owner is notified."""
    deal = "rec-handoff"
    await c.start_deal("sales-factory-teams", deal, "rita", value=4000, fields=FIELDS)
    await skip(timedelta(hours=1))
    await c.complete_stage(deal, "suspect", actor="alice", facts={"source": "inbound"})
    await skip(timedelta(days=5))  # past qualifying's deadline of 3 business days: alice is reminded
    await c.complete_stage(deal, "qualifying", actor="alice", facts={"active_need": "yes", "shortlisted": "yes"})
    await skip(timedelta(hours=2))
    await c.complete_stage(deal, "funnel-top", actor="carol", facts={"expected_close": "2027-03-01"})
    await c.complete_stage(deal, "funnel-middle", actor="carol", facts={"proposal_value": "4000"})
    await c.complete_stage(deal, "funnel-bottom", actor="carol", facts={"signed": "yes"})
    await skip(timedelta(hours=2))
    await c.complete_stage(deal, "customer", actor="frank", facts={"rebuy_intent": "none"})
    return deal


TIME_SKIPPING: dict[str, Scenario] = {
    "normal-path": normal_path,
    "skips": skips,
    "back-moves": back_moves,
    "lost": lost,
    "reminders-escalations": reminders,
    "cadence-reply": cadence_reply,
    "migration": migration,
    "follow-ons": follow_ons,
    "holidays": public_holidays,
    "handoffs": handoffs,
}


def _file(scenario: str, workflow_id: str) -> Path:
    return OUT / f"{scenario}--{re.sub(r'[^A-Za-z0-9._-]+', '_', workflow_id)}.json"


async def _record(
    env: WorkflowEnvironment, pool: asyncpg.Pool, url: str, tmp: Path, scenarios: dict[str, Scenario], skipping: bool
) -> None:
    queue = "recorder"
    registry_ = ChannelRegistry(ChannelsConfig(outbox_dir=str(tmp / "outbox")), tmp)
    worker = Worker(
        env.client,
        task_queue=queue,
        workflows=list(WORKFLOWS),
        max_cached_workflows=0,
        activities=[
            EventLogActivities(pool).append_events,
            MessageActivities(pool, registry_).send_message,
            ProposalActivities(tmp / "proposals").generate_proposal,
            FollowOnActivities(pool).prepare_follow_on,
            HandoffActivities(pool).choose_owner,
        ],
    )
    client = DealflowClient(env.client, pool, Settings(database_url=url, task_queue=queue))

    async def skip(duration: timedelta) -> None:
        if skipping:
            request = SleepRequest()
            request.duration.FromTimedelta(duration)
            await env.client.test_service.unlock_time_skipping_with_sleep(request, timeout=timedelta(minutes=1))

    async with worker:
        for name, scenario in scenarios.items():
            deal = await scenario(client, skip)
            await skip(timedelta(days=1))
            for history in await fetch_deal(env.client, deal):
                run = history.events[0].workflow_execution_started_event_attributes.original_execution_run_id
                path = _file(name, f"{history.workflow_id}--{run[:8]}")
                if path.exists():
                    continue
                path.write_text(
                    json.dumps(
                        {"scenario": name, "workflow_id": history.workflow_id, "history": to_json(history)}, indent=1
                    )
                )
                print(f"recorded {path.relative_to(HERE.parent.parent)}")


async def main(names: list[str]) -> None:
    unknown = set(names) - {*TIME_SKIPPING, "continue-as-new"}
    if unknown:
        raise SystemExit(
            f"unknown scenario(s) {', '.join(sorted(unknown))}; known: {', '.join(TIME_SKIPPING)}, continue-as-new"
        )
    chosen = {k: v for k, v in TIME_SKIPPING.items() if not names or k in names}
    OUT.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp())
    pg = EmbeddedPostgres(tmp / "pg")
    pg.start()
    pool = await connect_pool(pg.url)
    try:
        await migrate(pool)
        for path in [*shipped(), *sorted((HERE.parent / "processes").glob("*.yaml"))]:
            await registry.deploy(pool, load_file(path), deployed_by="recorder")
        skipping = await WorkflowEnvironment.start_time_skipping(
            test_server_existing_path=test_server_binary(), data_converter=pydantic_data_converter
        )
        await skipping.client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(
                namespace="default",
                search_attributes={k: IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD for k in SEARCH_ATTRIBUTE_TYPES},
            )
        )
        try:
            await _record(skipping, pool, pg.url, tmp, chosen, True)
        finally:
            await skipping.shutdown()
        if names and "continue-as-new" not in names:
            return
        dev = await WorkflowEnvironment.start_local(
            dev_server_existing_path=temporal_binary(),
            data_converter=pydantic_data_converter,
            search_attributes=list(SEARCH_ATTRIBUTES),
            dev_server_log_level="error",
            dev_server_extra_args=["--dynamic-config-value", "limit.historyCount.suggestContinueAsNew=40"],
        )
        try:
            await _record(dev, pool, pg.url, tmp, {"continue-as-new": continue_as_new}, False)
        finally:
            await dev.shutdown()
    finally:
        await pool.close()
        pg.stop()


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1:])))
