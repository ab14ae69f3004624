"""`dealflow revisions`: find the deals still running an older revision of the deal workflow and
move them to the latest one, the step that lets a revision be retired (docs/revisions.md).

Every run started after a release runs that release's revision: new deals are started on it,
and continue-as-new always moves a deal to the latest. So the runs that may be on an older
revision are exactly the running deal executions whose current run started before the release,
which Temporal's visibility finds without asking any deal a query.
"""

from __future__ import annotations

import argparse
from datetime import datetime
from typing import Any

from temporalio.client import Client

from cli.arguments import instant
from cli.output import emit
from client.api import DealflowClient
from workflows.deal import DealWorkflow


def stragglers_query(released_at: datetime) -> str:
    return (
        "WorkflowType = 'Deal' AND ExecutionStatus = 'Running' "
        f"AND StartTime < '{released_at.isoformat(timespec='seconds')}'"
    )


async def stragglers(temporal: Client, released_at: datetime) -> list[str]:
    """The workflow ids of running deals whose current run started before `released_at`."""
    return sorted([w.id async for w in temporal.list_workflows(stragglers_query(released_at))])


async def upgrade(temporal: Client, workflow_ids: list[str]) -> None:
    """Ask each deal to continue as new at its next quiet point (all its events in the log, no
    update in flight): the new run takes the latest revision."""
    for workflow_id in workflow_ids:
        await temporal.get_workflow_handle(workflow_id).signal(DealWorkflow.upgrade)


async def cmd_upgrade(args: argparse.Namespace, c: DealflowClient) -> None:
    released_at: datetime = args.started_before
    found = await stragglers(c.temporal, released_at)
    if not args.dry_run:
        await upgrade(c.temporal, found)
    if args.json:
        emit({"query": stragglers_query(released_at), "deals": found, "signalled": not args.dry_run})
        return
    verb = "would ask" if args.dry_run else "asked"
    print(f"{len(found)} running deal(s) started before {released_at.isoformat()}; {verb} each to continue as new")
    for workflow_id in found:
        print(f"  {workflow_id}")


def add_parser(top: Any) -> None:
    revisions = top.add_parser("revisions", help="move running deals to the latest workflow revision")
    sub = revisions.add_subparsers(dest="sub", required=True)
    up = sub.add_parser("upgrade", help="find deals whose run started before a release and upgrade them")
    up.add_argument(
        "--started-before",
        required=True,
        type=instant,
        metavar="TIME",
        help="when the release with the new revision was deployed (ISO 8601)",
    )
    up.add_argument("--dry-run", action="store_true", help="list them, signal nothing")
    up.add_argument("--json", action="store_true")
    up.set_defaults(client_run=cmd_upgrade)
