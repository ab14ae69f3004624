"""/api/v1/deals: start deals, act on them, and read them from the log and the projection.

Each handler turns the HTTP request into one call of the Python client (the application layer
the CLI calls too) and its answer into JSON; the rules live behind that call. The rep's actions
(complete, move, win, lose, reply) are routes built from their declarations (app/rep_actions.py).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from app.rep_actions import ACTIONS, Payload, RepAction
from client.api import StartedDeal
from domain import proposal_files
from domain.commands import ActionResult
from domain.events import DealEvent
from domain.limits import FieldsInput, Name
from web.dependencies import Client, Key, Who
from web.errors import RESPONSES
from web.idempotency import once
from web.schemas import DealPage, DealStatus, DealSummary, LinkedDeal, public

router = APIRouter(prefix="/deals", tags=["deals"], responses=RESPONSES)
STALE_HEADER = "Dealflow-Stale"


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class StartRequest(_Body):
    process: Name
    version: Name | None = Field(default=None, description="default: an experiment's arm, else the latest")
    deal_id: Name
    owner: Name | None = Field(default=None, description="default: the caller")
    value: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    fields: FieldsInput = {}


@router.post(
    "",
    name="start",
    status_code=201,
    response_model=StartedDeal,
    responses={
        202: {
            "model": StartedDeal,
            "description": "started, but reads do not find the deal yet (readable: false): follow the Location",
        }
    },
)
async def start_deal(body: StartRequest, request: Request, c: Client, caller: Who, key: Key = None) -> JSONResponse:
    """201 once reads find the deal; 202 when it is started but its first events have not reached
    the log within the wait (no worker ran it yet): `GET` the `Location` until it answers."""

    async def run() -> StartedDeal:
        return await c.start_deal(
            body.process,
            body.deal_id,
            body.owner or caller.name,
            actor=caller.name,
            value=body.value,
            fields=body.fields,
            version=body.version,
            request_id=key,
        )

    answer = await once(request, caller, key, run, status=lambda started: 201 if started.readable else 202)
    if answer.status_code in (201, 202):
        answer.headers["Location"] = f"/api/v1/deals/{body.deal_id}"
    return answer


@router.get("", response_model=DealPage, name="list")
async def list_deals(
    c: Client,
    caller: Who,
    process: str | None = None,
    stage: str | None = None,
    owner: str | None = None,
    team: str | None = None,
    version: str | None = None,
    status: Literal["open", "won", "lost"] | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0,
) -> DealPage:
    rows = await c.list_deals(
        process=process,
        stage=stage,
        owner=owner,
        team=team,
        version=version,
        status=status,
        limit=limit + 1,
        offset=offset,
    )
    more = len(rows) > limit
    items = [public(DealSummary, r) for r in rows[:limit]]
    return DealPage(items=items, offset=offset, limit=limit, next_offset=offset + limit if more else None)


@router.get("/{deal_id}", response_model=DealStatus, name="status")
async def deal_status(
    deal_id: str,
    c: Client,
    caller: Who,
    response: Response,
    min_seq: Annotated[
        int, Query(ge=0, le=2**31 - 1, description="wait (5 s at most) until the log holds this event")
    ] = 0,
) -> DealStatus:
    """With `min_seq`, the state once the log holds that event; if it did not within the wait,
    an older state, marked `stale` in the body and the `Dealflow-Stale` header."""
    status = await c.status(deal_id, min_seq=min_seq)
    if status.stale:
        response.headers[STALE_HEADER] = f"last_seq={status.state.last_seq}; min_seq={min_seq}"
    return public(DealStatus, status)


@router.get("/{deal_id}/events", response_model=list[DealEvent], name="events")
async def deal_events(
    deal_id: str, c: Client, caller: Who, min_seq: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0
) -> list[DealEvent]:
    """The deal's events as logged, but for a proposal's files, named inside the proposals
    directory (`domain.proposal_files`) and never by the server's path."""
    return [proposal_files.readable(e) for e in await c.events(deal_id, min_seq=min_seq)]


@router.get("/{deal_id}/chain", response_model=list[LinkedDeal], name="chain")
async def deal_chain(deal_id: str, c: Client, caller: Who) -> list[LinkedDeal]:
    return [public(LinkedDeal, d) for d in await c.chain(deal_id)]


def _act(action: RepAction) -> Callable[..., Awaitable[JSONResponse]]:
    """The API's route of one rep action: its payload is the JSON body; one call runs it."""

    async def act(
        deal_id: str, body: Payload, request: Request, c: Client, caller: Who, key: Key = None
    ) -> JSONResponse:
        async def run() -> ActionResult:
            return await action.run(c, deal_id, body, caller.name, key)

        return await once(request, caller, key, run)

    act.__annotations__ = {**act.__annotations__, "body": action.payload}
    return act


for _action in ACTIONS:
    router.add_api_route(
        f"/{{deal_id}}/{_action.name}",
        _act(_action),
        methods=["POST"],
        response_model=ActionResult,
        name=_action.name,
        description=_action.help[:1].upper() + _action.help[1:] + ".",
    )
