"""`dealflow access token ...`: create, list and revoke API tokens.

With access control on, who makes or revokes a token is a configured identity (`--as`, else
`$DEALFLOW_USER`) allowed to (app/token_service.py); with it off, the name given, or "local".
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from app import token_service
from cli.arguments import expiry
from cli.output import emit, print_table
from client.api import DealflowClient, Refused
from store.tokens import TokenRecord


def _json(r: TokenRecord) -> dict[str, Any]:
    return r.model_dump(mode="json")


def _when(value: Any) -> str:
    return f"{value:%Y-%m-%d %H:%M}" if value else "-"


def _actor(args: argparse.Namespace, c: DealflowClient, doing: str) -> str:
    if args.actor:
        return str(args.actor)
    if c.access is None:
        return "local"
    raise Refused(
        f"say who {doing}: --as NAME (or $DEALFLOW_USER), an ops identity or the manager of the token's identity",
        code="forbidden",
    )


async def cmd_create(args: argparse.Namespace, c: DealflowClient) -> None:
    actor = _actor(args, c, "makes the token")
    token, record = await token_service.create(c, args.name, created_by=actor, expires_at=args.expires)
    if args.json:
        emit({"token": token, **_json(record)})
        return
    until = f", expires {record.expires_at:%Y-%m-%d %H:%M} UTC" if record.expires_at else ", no expiry"
    print(f"token {record.token_id} for {record.identity}{until}; it is shown once, store it now:")
    print(token)
    if c.access is None:
        print("note: access control is off, so the server does not ask for tokens yet", file=sys.stderr)


async def cmd_list(args: argparse.Namespace, c: DealflowClient) -> None:
    records = await token_service.list_all(c)
    if args.json:
        emit([_json(r) for r in records])
        return
    print_table(
        ["token", "identity", "created", "by", "expires", "revoked", "last used"],
        [
            [
                r.token_id,
                r.identity,
                _when(r.created_at),
                r.created_by,
                _when(r.expires_at),
                _when(r.revoked_at),
                _when(r.last_used_at),
            ]
            for r in records
        ],
    )


async def cmd_revoke(args: argparse.Namespace, c: DealflowClient) -> None:
    record = await token_service.revoke(c, args.token_id, revoked_by=_actor(args, c, "revokes the token"))
    if args.json:
        emit(_json(record))
        return
    print(f"token {record.token_id} of {record.identity} revoked at {record.revoked_at:%Y-%m-%d %H:%M} UTC")


def add_parser(top: Any) -> None:
    access = top.add_parser("access", help="API tokens for the HTTP API and the web app").add_subparsers(
        dest="sub", required=True
    )
    token = access.add_parser("token", help="create, list, revoke tokens").add_subparsers(
        dest="token_sub", required=True
    )
    me = os.environ.get("DEALFLOW_USER") or None
    create = token.add_parser("create", help="a new token for an identity (shown once)")
    create.add_argument("name", metavar="NAME", help="the identity the token signs in")
    create.add_argument("--expires", type=expiry, metavar="WHEN", help="a span (30d, 12h) or a date; default never")
    create.add_argument(
        "--as", dest="actor", default=me, metavar="WHO", help="who makes it: ops, or the identity's manager"
    )
    create.add_argument("--json", action="store_true")
    create.set_defaults(client_run=cmd_create)
    ls = token.add_parser("list", help="every token, revoked and expired ones too (never their secrets)")
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(client_run=cmd_list)
    revoke = token.add_parser("revoke", help="stop a token working, at once")
    revoke.add_argument("token_id", metavar="TOKEN_ID")
    revoke.add_argument(
        "--as", dest="actor", default=me, metavar="WHO", help="who revokes it: its own identity, ops, or their manager"
    )
    revoke.add_argument("--json", action="store_true")
    revoke.set_defaults(client_run=cmd_revoke)
