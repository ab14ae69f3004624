"""Building and running a dealflow worker: the deal workflow and its activities on one queue."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import asyncpg
from temporalio.client import Client
from temporalio.worker import Interceptor, Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from activities.channels.config import ChannelRegistry, load_channels
from activities.event_log import EventLogActivities
from activities.follow_ons import FollowOnActivities
from activities.handoffs import HandoffActivities
from activities.messages import MessageActivities
from activities.proposals import ProposalActivities
from store.db import connect_pool
from store.migrations import migrate
from worker import tracing
from worker.connect import connect_temporal
from worker.endpoint import make_app, serving
from worker.health import Readiness
from worker.settings import Settings, eager_activities, home, proposals_dir
from worker.telemetry import Telemetry
from workflows.cadence import FollowUpCadence
from workflows.deal import DealWorkflow

log = logging.getLogger("dealflow.worker")

WORKFLOWS: Sequence[type] = (DealWorkflow, FollowUpCadence)


@dataclass(frozen=True)
class WorkerSlots:
    """How many tasks of each kind a worker runs at once; None: the SDK's default (100). A worker
    needs at least two workflow task slots: it caches workflows, and with one slot their tasks
    wait on its sticky queue until they time out there."""

    workflow_tasks: int | None = None
    activities: int | None = None
    local_activities: int | None = None


def build_worker(
    client: Client,
    pool: asyncpg.Pool,
    task_queue: str,
    *,
    channels: ChannelRegistry | None = None,
    proposals: Path | None = None,
    event_log: EventLogActivities | None = None,
    handoffs: HandoffActivities | None = None,
    interceptors: Sequence[Interceptor] = (),
    slots: WorkerSlots | None = None,
    eager_activities: bool = True,
) -> Worker:
    """The deal and cadence workflows with every activity they call, on one task queue.

    The client's interceptors that are worker interceptors too (tracing: worker.tracing) apply
    to the worker as well, before `interceptors` (metrics: worker.telemetry). `slots` caps the
    tasks the worker runs at once (the SDK's defaults otherwise); the overload test gives it few.
    With `eager_activities` a workflow task's activities (the log's appends) come back in the
    answer to its completion, when the server allows it, instead of through the task queue.
    """
    event_log = event_log or EventLogActivities(pool)
    messages = MessageActivities(pool, channels or load_channels(home()))
    documents = ProposalActivities(proposals or proposals_dir())
    follow_ons = FollowOnActivities(pool)
    handoffs = handoffs or HandoffActivities(pool)
    slots = slots or WorkerSlots()
    return Worker(
        client,
        task_queue=task_queue,
        workflows=list(WORKFLOWS),
        # dealflow's own workflow modules are deterministic by construction (and the replay tests
        # run them under the full sandbox): passing them through spares every run a private copy
        # of them, which halves the worker's memory with many deals open (bench/system_bench.py)
        workflow_runner=SandboxedWorkflowRunner(
            restrictions=SandboxRestrictions.default.with_passthrough_modules("domain", "workflows", "definitions")
        ),
        activities=[
            event_log.append_events,
            messages.send_message,
            documents.generate_proposal,
            follow_ons.prepare_follow_on,
            handoffs.choose_owner,
        ],
        interceptors=interceptors,
        max_concurrent_workflow_tasks=slots.workflow_tasks,
        max_concurrent_activities=slots.activities,
        max_concurrent_local_activities=slots.local_activities,
        disable_eager_activity_execution=not eager_activities,
    )


@asynccontextmanager
async def running_worker(
    settings: Settings,
    pool: asyncpg.Pool,
    *,
    endpoint: tuple[str, int] | None = None,
    eager: bool | None = None,
) -> AsyncIterator[Worker]:
    """A worker polling `settings`' Temporal and task queue, with its metrics and health served on
    `endpoint` (host, port) when one is given (docs/operations.md#observability). `eager` is read
    from `DEALFLOW_EAGER_ACTIVITIES` when not given, before anything connects, so that a bad value
    is named at once."""
    if eager is None:
        eager = eager_activities()
    tracing.configure("dealflow-worker")
    telemetry = Telemetry(pool) if endpoint else None
    client = await connect_temporal(settings, runtime=telemetry.runtime if telemetry else None)
    worker = build_worker(
        client,
        pool,
        settings.task_queue,
        interceptors=telemetry.interceptors if telemetry else (),
        eager_activities=eager,
    )
    async with AsyncExitStack() as stack:
        if telemetry and endpoint:  # first: a taken port stops the worker before it polls
            await stack.enter_async_context(serving(endpoint, make_app(telemetry, Readiness(pool, worker))))
        await stack.enter_async_context(worker)
        log.info("worker on task queue %r, Temporal %s", settings.task_queue, settings.temporal_address)
        yield worker


async def run_worker(
    settings: Settings, stop: asyncio.Event | None = None, *, endpoint: tuple[str, int] | None = None
) -> None:
    """Run until `stop` is set (or forever); migrations run first so the schema is current. The
    worker's settings are read before the database is connected: a bad one is named at once."""
    eager = eager_activities()
    pool = await connect_pool(settings.database_url)
    try:
        applied = await migrate(pool)
        if applied:
            log.info("applied migrations %s", applied)
        async with running_worker(settings, pool, endpoint=endpoint, eager=eager):
            await (stop or asyncio.Event()).wait()
    finally:
        await pool.close()
