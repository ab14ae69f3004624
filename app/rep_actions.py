"""The rep's actions on a deal, each declared once.

A declaration names the action, its payload (the API's JSON body, the CLI's flags and the deal
page's form fields, by the payload's field names), what each face calls it, the access it needs,
the deal workflow's update it runs (by that update's explicit name, which the replay corpus pins)
and the one call of the client that runs it. The CLI's subcommands (cli/main.py), the API's
routes (web/api_deals.py) and the page's form routes (web/page_deals.py) are built from `ACTIONS`,
so a new action is one entry here, its client call and its update.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.fields import FieldInfo

from app import deal_service
from app.context import Context
from app.permissions import Permission
from domain.access import Action
from domain.commands import ActionResult
from domain.events import BuyerResponseKind
from domain.limits import FactsInput, Kinds, Name, Note


class Payload(BaseModel):
    """What the caller sends; the deal's own rules are checked behind the client call."""

    model_config = ConfigDict(extra="forbid")


class CompleteRequest(Payload):
    stage: Name = Field(description="the stage the caller believes the deal is at")
    facts: FactsInput = {}


class MoveRequest(Payload):
    to: Name
    reason: Note | None = None
    expected_stage: Name | None = None


class WinRequest(Payload):
    facts: FactsInput = {}
    expected_stage: Name | None = None
    rebuy: Kinds = Field(default=[], description="follow-on deals to start after their delays")


class LoseRequest(Payload):
    reason: Name
    note: Note | None = None
    expected_stage: Name | None = None
    facts: FactsInput = Field(default={}, description="the current stage's facts known at the loss")


class ReplyRequest(Payload):
    kind: BuyerResponseKind = "replied"
    note: Note | None = None


@dataclass(frozen=True)
class Flag:
    """How the CLI spells one payload field, where the field's name alone would not do."""

    flag: str | None = None  # default: --the-field-name
    metavar: str | None = None
    help: str | None = None


@dataclass(frozen=True)
class Check:
    """A form field the page requires before anything is sent (the browser checks it too), and
    what to tell the rep when it is left empty."""

    field: str
    expected: str | None  # None: anything but blank
    unfilled: str


FieldKind = Literal["map", "list", "choice", "text"]


def kind_of(info: FieldInfo) -> FieldKind:
    """How the faces read a payload field: a map (`--fact K=V`, form fields `fact.K`), a
    repeatable value, one of a few choices, or text."""
    annotation = info.annotation
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        annotation = args[0] if len(args) == 1 else annotation
    origin = typing.get_origin(annotation) or annotation
    if origin is dict:
        return "map"
    if origin is list:
        return "list"
    return "choice" if origin is Literal else "text"


# the one call of the client that runs an action: (client, deal id, payload, actor, request id)
Run = Callable[[Context, str, Any, str, str | None], Awaitable[ActionResult]]


@dataclass(frozen=True)
class RepAction:
    name: str  # the CLI's `dealflow deal NAME`, the API's POST .../deals/{id}/NAME, the page's form
    payload: type[Payload]
    help: str  # the CLI's help and the API's summary
    update: str  # DealWorkflow's update, by name
    run: Run
    done: str  # what the page says once it is done, formatted with the payload's fields
    access: Permission = "act"  # checked by the client before it sends anything
    deal_rule: Action = "act"  # checked by the deal itself (domain/access.py)
    flags: dict[str, Flag] = field(default_factory=dict)
    checks: tuple[Check, ...] = ()  # the page form's own required fields
    unfilled: str = ""  # how the page's refusal for unfilled checks begins

    def flag(self, name: str) -> Flag:
        return self.flags.get(name, Flag())

    def option(self, name: str) -> str:
        """The CLI's option for a payload field."""
        return self.flag(name).flag or "--" + name.replace("_", "-")

    def entry(self, name: str) -> str:
        """The singular of a map field, as both faces spell an entry: `--fact K=V`, `fact.K`."""
        return self.option(name).removeprefix("--")


async def _complete(c: Context, deal_id: str, p: CompleteRequest, actor: str, rid: str | None) -> ActionResult:
    return await deal_service.complete_stage(c, deal_id, p.stage, actor=actor, facts=dict(p.facts), request_id=rid)


async def _move(c: Context, deal_id: str, p: MoveRequest, actor: str, rid: str | None) -> ActionResult:
    return await deal_service.move(
        c, deal_id, p.to, actor=actor, reason=p.reason, expected_stage=p.expected_stage, request_id=rid
    )


async def _win(c: Context, deal_id: str, p: WinRequest, actor: str, rid: str | None) -> ActionResult:
    return await deal_service.win(
        c,
        deal_id,
        actor=actor,
        facts=dict(p.facts),
        expected_stage=p.expected_stage,
        request_id=rid,
        rebuy=list(p.rebuy),
    )


async def _lose(c: Context, deal_id: str, p: LoseRequest, actor: str, rid: str | None) -> ActionResult:
    return await deal_service.lose(
        c,
        deal_id,
        p.reason,
        actor=actor,
        note=p.note,
        expected_stage=p.expected_stage,
        request_id=rid,
        facts=dict(p.facts),
    )


async def _reply(c: Context, deal_id: str, p: ReplyRequest, actor: str, rid: str | None) -> ActionResult:
    return await deal_service.record_response(c, deal_id, actor=actor, kind=p.kind, note=p.note, request_id=rid)


ACTIONS: tuple[RepAction, ...] = (
    RepAction(
        "complete",
        CompleteRequest,
        "complete the current stage",
        "complete_stage",
        _complete,
        done="Completed {stage}",
        flags={"facts": Flag("--fact")},
    ),
    RepAction(
        "move",
        MoveRequest,
        "skip ahead or move back",
        "move",
        _move,
        done="Moved to {to}",
        flags={"to": Flag(metavar="STAGE")},
    ),
    RepAction(
        "win",
        WinRequest,
        "close the deal as won",
        "win",
        _win,
        done="Won",
        flags={
            "facts": Flag("--fact"),
            "rebuy": Flag(metavar="KIND", help="start this follow-on deal after its delay (repeatable)"),
        },
    ),
    RepAction(
        "lose",
        LoseRequest,
        "close the deal as lost",
        "lose",
        _lose,
        done="Lost",
        flags={"facts": Flag("--fact", help="a fact of the current stage known at the loss (repeatable)")},
        checks=(
            Check("reason", None, "choose why in “Why was it lost?”"),
            Check("confirm", "yes", "tick “I confirm this deal is lost”"),
        ),
        unfilled="the deal was not marked lost",
    ),
    RepAction(
        "reply",
        ReplyRequest,
        "the buyer answered: stops the follow-up cadence at once",
        "record_response",
        _reply,
        done="Buyer {kind}",
    ),
)

BY_NAME: dict[str, RepAction] = {a.name: a for a in ACTIONS}
