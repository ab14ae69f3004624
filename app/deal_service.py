"""The deal's use cases: start one, act on it (complete, move, win, lose, a buyer's reply) and
migrate running deals to another version.

Each checks access first (`app/permissions.py`), builds the command the deal's update
validator decides on, and sends it through `app/deal_workflows.py`. What a deal looks like
afterwards is read from the log (`app/deal_reads.py`).
"""

from __future__ import annotations

import uuid
from typing import Any

from pydantic import BaseModel, Field

from app import deal_reads, permissions
from app.context import Context
from app.deal_workflows import Ended
from app.errors import DealflowError, NotFound, Refused, build
from app.migration import MigrationPlan, PlanError, plan
from app.permissions import Permission
from definitions.experiment import assign
from definitions.loader import MAX_PINNED_BYTES, pinned_size, size_text
from domain.commands import (
    REVISION,
    ActionResult,
    Command,
    CompleteStage,
    DealInput,
    LoseDeal,
    MigrateDeal,
    MoveStage,
    RecordResponse,
    StartDeal,
    WinDeal,
    workflow_id,
)
from domain.imports import ImportedHistory
from domain.state import DealState
from store import deals, experiments
from workflows.deal import DealWorkflow

# how long `start_deal` waits for the deal's first events to reach the log (the deal is started
# either way; with the database down, reads find it once the append gets through)
START_LOG_WAIT = 10.0


class StartedDeal(BaseModel):
    deal_id: str
    workflow_id: str
    process_ref: str
    stage: str
    readable: bool = Field(
        default=True,
        description="whether reads find the deal yet: false while its first events are still on their way "
        "to the log (no worker has run it yet, or the database is slow)",
    )


async def start_deal(
    ctx: Context,
    process: str,
    deal_id: str,
    owner: str,
    *,
    actor: str | None = None,
    value: float | None = None,
    fields: dict[str, str] | None = None,
    version: str | None = None,
    time_scale: float = 1.0,
    imported: ImportedHistory | None = None,
    permission: Permission = "start",
    request_id: str | None = None,
) -> StartedDeal:
    """Start a deal on `version`, or else on the version a running experiment assigns it, or
    else on the latest deployed version of `process`.

    `time_scale` below 1 compresses reminder and cadence waits, for simulations only.
    `imported` starts a deal brought over from a CRM at the stage it reached there (an
    import asks for the `import` permission instead of `start`). A start repeated under its
    `request_id` (the API's Idempotency-Key) is answered as the first was, not refused as a
    deal that exists.
    """
    actor = actor or owner
    _, team = await permissions.require_start(ctx, actor, owner, deal_id, permission)
    start = build(
        StartDeal,
        deal_id=deal_id,
        owner=owner,
        actor=actor,
        value=value,
        fields=fields or {},
        team=team,
        imported=imported,
        request_id=request_id,
    )
    if version is None:
        running = await experiments.running_on(ctx.pool, process)
        if running is not None:
            version = assign(running, deal_id)
            start = start.model_copy(update={"experiment": running.name})
    pinned = await ctx.definition(process, version)
    size = pinned_size(pinned)
    if size > MAX_PINNED_BYTES:  # a version deployed before the loader refused such sizes
        raise Refused(
            f"{pinned.ref} is {size_text(size)} ({size:,} bytes) pinned, and a deal carries its definition "
            f"whole: dealflow starts deals on at most {size_text(MAX_PINNED_BYTES)} (Temporal refuses a start "
            "above 2 MiB); deploy a smaller version and start the deal on it",
            code="definition_too_large",
        )
    first = imported.visits[-1].stage if imported else pinned.definition.stages[0].id
    if imported and not pinned.definition.has_stage(first):
        raise Refused(f"{pinned.ref} has no stage {first!r}", code="unknown_stage")
    # indexed from the first instant, so `temporal workflow list` finds the deal at once
    preview = DealState(deal_id=deal_id, process=pinned.name, version=pinned.version, owner=owner, stage=first)
    deal_input = DealInput(
        start=start,
        pinned=pinned,
        time_scale=time_scale,
        log_flush_seconds=ctx.log_flush_seconds,
        revision=REVISION,
    )
    await ctx.workflows.start(deal_input, preview)
    # the deal's start is flushed at once: once it is in the log, every read finds the deal
    within = min(START_LOG_WAIT, ctx.settings.request_deadline_seconds / 2)
    readable = await deal_reads.until_logged(ctx, deal_id, min_seq=1, within=within)
    return StartedDeal(
        deal_id=deal_id, workflow_id=workflow_id(deal_id), process_ref=pinned.ref, stage=first, readable=readable
    )


async def send(ctx: Context, deal_id: str, update: Any, cmd: Command) -> ActionResult:
    """A command to the deal; a refusal on access grounds is recorded, and a deal that has ended
    answers a repeat of an earlier request from its log."""
    try:
        return await ctx.workflows.update(deal_id, update, cmd)
    except Refused as refused:
        if refused.code == "forbidden":
            role = cmd.claim.role if cmd.claim else None
            await permissions.record_refusal(ctx, cmd.actor, role, type(cmd).__name__, deal_id, refused.message)
        raise
    except Ended:
        state = await deal_reads.logged_state(ctx, deal_id)
        result = ActionResult.of(state, cmd.request_id)
        if result is not None:
            return result
        raise Refused(f"deal {deal_id!r} is {state.status}; it takes no more actions", code="deal_closed") from None


def _request_id(request_id: str | None) -> str:
    return request_id or str(uuid.uuid4())


async def complete_stage(
    ctx: Context,
    deal_id: str,
    stage: str,
    *,
    actor: str,
    facts: dict[str, Any] | None = None,
    request_id: str | None = None,
) -> ActionResult:
    cmd = build(
        CompleteStage,
        request_id=_request_id(request_id),
        actor=actor,
        stage=stage,
        facts=facts or {},
        claim=await permissions.require(ctx, actor, "act", deal_id),
    )
    return await send(ctx, deal_id, DealWorkflow.complete_stage, cmd)


async def move(
    ctx: Context,
    deal_id: str,
    to: str,
    *,
    actor: str,
    reason: str | None = None,
    expected_stage: str | None = None,
    request_id: str | None = None,
) -> ActionResult:
    cmd = build(
        MoveStage,
        request_id=_request_id(request_id),
        actor=actor,
        claim=await permissions.require(ctx, actor, "act", deal_id),
        to=to,
        reason=reason,
        expected_stage=expected_stage,
    )
    return await send(ctx, deal_id, DealWorkflow.move, cmd)


async def win(
    ctx: Context,
    deal_id: str,
    *,
    actor: str,
    facts: dict[str, Any] | None = None,
    expected_stage: str | None = None,
    request_id: str | None = None,
    rebuy: list[str] | None = None,
) -> ActionResult:
    """Close as won; `rebuy` names the follow-on deals to start after their delays."""
    cmd = build(
        WinDeal,
        request_id=_request_id(request_id),
        actor=actor,
        claim=await permissions.require(ctx, actor, "act", deal_id),
        facts=facts or {},
        expected_stage=expected_stage,
        rebuy=rebuy or [],
    )
    return await send(ctx, deal_id, DealWorkflow.win, cmd)


async def lose(
    ctx: Context,
    deal_id: str,
    reason: str,
    *,
    actor: str,
    note: str | None = None,
    expected_stage: str | None = None,
    request_id: str | None = None,
    facts: dict[str, Any] | None = None,
) -> ActionResult:
    """Close as lost; `facts` are the current stage's facts known at the loss (none required)."""
    cmd = build(
        LoseDeal,
        request_id=_request_id(request_id),
        actor=actor,
        claim=await permissions.require(ctx, actor, "act", deal_id),
        reason=reason,
        note=note,
        expected_stage=expected_stage,
        facts=facts or {},
    )
    return await send(ctx, deal_id, DealWorkflow.lose, cmd)


async def record_response(
    ctx: Context,
    deal_id: str,
    *,
    actor: str,
    kind: str = "replied",
    note: str | None = None,
    request_id: str | None = None,
) -> ActionResult:
    """The buyer replied, booked a meeting, unsubscribed or bounced: stops the cadence at once."""
    cmd = build(
        RecordResponse,
        request_id=_request_id(request_id),
        actor=actor,
        kind=kind,
        note=note,
        claim=await permissions.require(ctx, actor, "act", deal_id),
    )
    return await send(ctx, deal_id, DealWorkflow.record_response, cmd)


# --- migrating running deals -------------------------------------------------------------


async def plan_migration(
    ctx: Context, name: str, from_version: str, to_version: str, stage_map: dict[str, str] | None = None
) -> MigrationPlan:
    source = await ctx.definition(name, from_version)
    target = await ctx.definition(name, to_version)
    try:
        return plan(source, target, await deals.running_on(ctx.pool, name, source.version), stage_map or {})
    except PlanError as exc:
        raise Refused(str(exc), code="invalid_plan") from None


async def migrate_deal(ctx: Context, deal_id: str, migration: MigrationPlan, *, actor: str) -> ActionResult:
    claim = await permissions.require(ctx, actor, "migrate", deal_id)
    cmd = build(
        MigrateDeal,
        request_id=migration.request_id(deal_id),
        actor=actor,
        from_version=migration.source.version,
        to=migration.target,
        stage_map=migration.explicit,
        claim=claim,
    )
    return await send(ctx, deal_id, DealWorkflow.migrate, cmd)


async def apply_migration(
    ctx: Context, migration: MigrationPlan, *, actor: str
) -> list[tuple[str, ActionResult | DealflowError]]:
    """Migrate every deal of the plan; a deal that refuses (it moved on meanwhile) is reported,
    the others go ahead. A plan that strands any deal is refused before anything is sent."""
    if not migration.ok:
        stranded = ", ".join(f"{s.deal_id} at {s.stage}" for s in migration.stranded)
        raise Refused(
            f"the plan would leave deals on stages {migration.target.ref} does not have: {stranded}",
            code="stranded_deals",
            details=[s.deal_id for s in migration.stranded],
        )
    outcomes: list[tuple[str, ActionResult | DealflowError]] = []
    for one in migration.moves:
        try:
            outcomes.append((one.deal_id, await migrate_deal(ctx, one.deal_id, migration, actor=actor)))
        except (Refused, NotFound) as exc:
            outcomes.append((one.deal_id, exc))
    return outcomes
