"""A deal as its log tells it: its events, its state, its status, its chain of follow-on deals and
the listings. Never asked of the running deal (a workflow query can apply signals no workflow
task has processed yet); a rep reads their own write by waiting for the log to reach the
`last_seq` of their action's result.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from app.context import Context
from app.errors import DealflowError, LogLagging, NotFound
from domain import decide
from domain.commands import MissingFact
from domain.events import DealEvent
from domain.pending import Pending, pending
from domain.state import DealState, fold
from store import deals, event_log, log_failures
from store.deals import DealRow, LinkedDeal
from store.log_failures import AppendFailure


class DealStatus(BaseModel):
    state: DealState
    missing_facts: list[MissingFact]
    process_ref: str
    running: bool
    log_failure: AppendFailure | None = Field(
        default=None, description="set while the deal's later events are missing from the log: their append fails"
    )
    stale: bool = Field(
        default=False, description="the log had not reached the min_seq asked for within the wait: an older state"
    )
    # what the deal will do by itself next, soonest first: reminder rungs, escalations, touches
    pending: list[Pending] = []


def folded(deal_id: str, events: list[DealEvent]) -> DealState:
    """The deal's state from its logged events; a log that does not fold has had rows altered or
    deleted behind its back, and says so rather than failing as a server error."""
    try:
        return fold(events)
    except ValueError as exc:
        raise DealflowError(
            f"the log of deal {deal_id!r} does not fold ({exc}): 'dealflow audit verify {deal_id}' says where",
            code="log_broken",
        ) from None


async def until_logged(ctx: Context, deal_id: str, min_seq: int, within: float) -> bool:
    """Wait, `within` seconds at most, until the log holds the deal's event `min_seq`; whether it does."""
    return await ctx.log_watch.until_logged(deal_id, min_seq, within)


async def events(ctx: Context, deal_id: str, *, min_seq: int = 0, within: float = 5.0) -> list[DealEvent]:
    """The deal's logged events, once the log holds event `min_seq` (see `logged_state`)."""
    if min_seq and await event_log.last_seq(ctx.pool, deal_id) == 0:
        raise NotFound(f"no deal {deal_id!r}", code="unknown_deal")  # nothing to wait for
    await until_logged(ctx, deal_id, min_seq, within)
    found = await event_log.read(ctx.pool, deal_id)
    if not found:
        failure = await log_failures.of_deal(ctx.pool, deal_id)
        if failure is not None:
            raise LogLagging(f"deal {deal_id!r} is in Temporal's history but not in the log: {failure.describe()}")
        raise NotFound(f"no deal {deal_id!r}", code="unknown_deal")
    return found


async def logged_state(ctx: Context, deal_id: str, *, min_seq: int = 0, within: float = 5.0) -> DealState:
    """A deal's state, folded from its events in the log (never asked of the running deal).

    The log trails a running deal by at most its flush window (a start, an outcome and a
    migration are in it when their calls return). To read your own write, pass the
    `last_seq` of the action's result as `min_seq`: the read waits up to `within` seconds
    for the log to reach it.
    """
    return folded(deal_id, await events(ctx, deal_id, min_seq=min_seq, within=within))


async def status(ctx: Context, deal_id: str, *, min_seq: int = 0) -> DealStatus:
    """The deal as its log tells it; `stale` when the log had not reached `min_seq` in time."""
    logged = await events(ctx, deal_id, min_seq=min_seq)
    state = folded(deal_id, logged)
    pinned = await ctx.definition(state.process, state.version)
    return DealStatus(
        state=state,
        missing_facts=decide.missing_facts(pinned.definition, state),
        process_ref=pinned.ref,
        running=not state.may_end,
        log_failure=await log_failures.of_deal(ctx.pool, deal_id),
        stale=state.last_seq < min_seq,
        pending=pending(pinned.definition, state, logged),
    )


async def chain(ctx: Context, deal_id: str) -> list[LinkedDeal]:
    linked = await deals.chain(ctx.pool, deal_id)
    if not linked:
        raise NotFound(f"no deal {deal_id!r} in the projection", code="unknown_deal")
    return linked


async def list_deals(
    ctx: Context,
    *,
    stage: str | None = None,
    owner: str | None = None,
    process: str | None = None,
    status: str | None = None,
    version: str | None = None,
    team: str | None = None,
    limit: int = 1000,
    offset: int = 0,
) -> list[DealRow]:
    return await deals.list_deals(
        ctx.pool,
        stage=stage,
        owner=owner,
        process=process,
        status=status,
        version=version,
        team=team,
        limit=limit,
        offset=offset,
    )
