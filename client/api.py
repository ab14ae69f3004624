"""The typed Python client: what the CLI, the demo and any integration use to drive deals.

`DealflowClient` is a thin facade over the application layer's services: each method is the
service function of its use case (`app/deal_service.py`, `deal_reads.py`,
`definition_service.py`, `experiment_service.py`), with the client itself as the services'
`Context` (`app/context.py`). Connect with `DealflowClient.connect()`, which resolves the
settings as the CLI does (`app/composition.py`).

It needs the database as well as Temporal, by design: every read (a deal's status, its events,
the listings, the answer to a repeated request of a deal that has ended) comes from the log's
read models in PostgreSQL, never from a workflow query, which could make a deal apply signals
no workflow task has processed yet. Acting on a deal goes to Temporal. An integrator without
database credentials uses the HTTP API instead (docs/web.md).

Every failure a caller can act on surfaces as a `DealflowError` subclass with a stable `code`
(`app/errors.py`): `Refused`, `NotFound`, `Unavailable`, `Unauthenticated`, `OutcomeUnknown`
(repeat it under the same request id).
"""

from __future__ import annotations

from app import deal_reads, deal_service, definition_service, experiment_service, permissions
from app.composition import open_parts
from app.context import Context
from app.deal_reads import DealStatus
from app.deal_service import StartedDeal
from app.errors import (
    DealflowError,
    LogLagging,
    NotFound,
    OutcomeUnknown,
    Refused,
    Unauthenticated,
    Unavailable,
)
from worker.settings import Settings

__all__ = [
    "DealStatus",
    "DealflowClient",
    "DealflowError",
    "LogLagging",
    "NotFound",
    "OutcomeUnknown",
    "Refused",
    "StartedDeal",
    "Unauthenticated",
    "Unavailable",
]


class DealflowClient(Context):
    @classmethod
    async def connect(cls, settings: Settings | None = None) -> DealflowClient:
        parts = await open_parts(settings)
        return cls(parts.temporal, parts.pool, parts.settings, parts.access)

    async def close(self) -> None:
        await self.pool.close()

    async def __aenter__(self) -> DealflowClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # access: refuse (`Refused`, code forbidden, and recorded) unless the role allows it
    require = permissions.require

    # definitions and experiments
    deploy = definition_service.deploy
    deploy_pinned = definition_service.deploy_pinned
    definitions = definition_service.deployments
    start_experiment = experiment_service.begin
    stop_experiment = experiment_service.end
    experiment = experiment_service.get

    # deals: starting, acting, migrating
    start_deal = deal_service.start_deal
    complete_stage = deal_service.complete_stage
    move = deal_service.move
    win = deal_service.win
    lose = deal_service.lose
    record_response = deal_service.record_response
    plan_migration = deal_service.plan_migration
    migrate_deal = deal_service.migrate_deal
    apply_migration = deal_service.apply_migration

    # deals as the log tells them
    logged_state = deal_reads.logged_state
    status = deal_reads.status
    events = deal_reads.events
    chain = deal_reads.chain
    list_deals = deal_reads.list_deals
