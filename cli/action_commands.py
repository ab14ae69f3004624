"""`dealflow deal complete|move|win|lose|reply`: the rep's actions as subcommands, built from their
declarations (app/rep_actions.py), a flag per payload field.

The values go to the action's client call as typed; the client checks them as it checks any
caller's, so the CLI's refusals say what the API's and the page's say.
"""

from __future__ import annotations

import argparse
import typing
from collections.abc import Awaitable, Callable
from typing import Any

from pydantic.fields import FieldInfo

from app.rep_actions import ACTIONS, RepAction, kind_of
from cli.arguments import KeyValues, key_value
from cli.output import action_json, emit
from client.api import DealflowClient
from domain.commands import ActionResult


def _add_flag(p: argparse.ArgumentParser, action: RepAction, name: str, info: FieldInfo) -> None:
    flag, spec = action.option(name), action.flag(name)
    kind = kind_of(info)
    if kind == "map":
        p.add_argument(flag, dest=name, action=KeyValues, type=key_value, default={}, metavar="K=V", help=spec.help)
    elif kind == "list":
        p.add_argument(flag, dest=name, action="append", metavar=spec.metavar, help=spec.help)
    elif kind == "choice":
        choices = list(typing.get_args(info.annotation))
        p.add_argument(flag, dest=name, default=info.default, choices=choices, help=spec.help)
    else:
        p.add_argument(flag, dest=name, required=info.is_required(), metavar=spec.metavar, help=spec.help)


def print_action(args: argparse.Namespace, result: ActionResult) -> None:
    if args.json:
        emit(action_json(result))
        return
    where = f"stage {result.stage}" if result.stage else "no stage"
    print(f"deal {result.deal_id}: {result.status}, {where}; events {result.first_seq}..{result.last_seq}")


def _command(action: RepAction) -> Callable[[argparse.Namespace, DealflowClient], Awaitable[None]]:
    async def run(args: argparse.Namespace, c: DealflowClient) -> None:
        given = {name: getattr(args, name) for name in action.payload.model_fields}
        # unvalidated here: the client checks the values and names what is wrong
        payload = action.payload.model_construct(**{k: v for k, v in given.items() if v is not None})
        print_action(args, await action.run(c, args.deal_id, payload, args.actor, args.request_id))

    return run


def add_parsers(deal: Any) -> None:
    """Each declared action as a subcommand of `dealflow deal` (`deal`: its subparsers)."""
    for action in ACTIONS:
        p: argparse.ArgumentParser = deal.add_parser(action.name, help=action.help)
        p.add_argument("deal_id", metavar="ID")
        p.add_argument("--as", dest="actor", required=True, metavar="REP", help="who is acting")
        p.add_argument("--request-id", help="idempotency key: a repeat returns the first result")
        p.add_argument("--json", action="store_true")
        for name, info in action.payload.model_fields.items():
            _add_flag(p, action, name, info)
        p.set_defaults(client_run=_command(action))
