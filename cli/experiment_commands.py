"""`dealflow experiments ...`: start, list, show, stop."""

from __future__ import annotations

import argparse
from typing import Any

from app import experiment_service
from app.experiment_service import ExperimentView
from cli.output import emit, print_table
from client.api import DealflowClient


def _json(view: ExperimentView) -> dict[str, Any]:
    return view.model_dump(mode="json")


async def cmd_start(args: argparse.Namespace, c: DealflowClient) -> None:
    view = await experiment_service.start(c, experiment_service.load(args.file), started_by=args.actor)
    if args.json:
        emit(_json(view))
        return
    split = ", ".join(f"{a.version} (weight {a.weight})" for a in view.arms)
    print(f"experiment {view.experiment} running on {view.process}: new deals go to {split}")


async def cmd_stop(args: argparse.Namespace, c: DealflowClient) -> None:
    view = await experiment_service.stop(c, args.name, stopped_by=args.actor)
    if args.json:
        emit(_json(view))
        return
    print(f"experiment {args.name} stopped; new deals of {view.process} take the latest version again")


async def cmd_list(args: argparse.Namespace, c: DealflowClient) -> None:
    views = await experiment_service.list_all(c)
    if args.json:
        emit([_json(v) for v in views])
        return
    print_table(
        ["experiment", "process", "arms", "started", "status"],
        [
            [
                v.experiment,
                v.process,
                ", ".join(f"{a.version}x{a.weight}" for a in v.arms),
                f"{v.started_at:%Y-%m-%d %H:%M} by {v.started_by}",
                "running" if v.running else f"stopped {v.stopped_at:%Y-%m-%d %H:%M}",
            ]
            for v in views
        ],
    )


async def cmd_show(args: argparse.Namespace, c: DealflowClient) -> None:
    v = await experiment_service.show(c, args.name)
    if args.json:
        emit(_json(v))
        return
    state = "running" if v.running else f"stopped at {v.stopped_at:%Y-%m-%d %H:%M} by {v.stopped_by}"
    print(f"experiment {v.experiment} on {v.process}, started {v.started_at:%Y-%m-%d %H:%M} by {v.started_by}, {state}")
    if v.description:
        print(v.description)
    total = sum(a.weight for a in v.arms)
    print_table(
        ["version", "weight", "share", "deals so far"],
        [[a.version, a.weight, f"{a.weight / total:.0%}", a.deals] for a in v.arms],
    )
    print(f"compare them: dealflow metrics compare --experiment {v.experiment}")


def add_parser(top: Any) -> None:
    ex = top.add_parser("experiments", help="split new deals between process versions (A/B)")
    sub = ex.add_subparsers(dest="sub", required=True)
    start = sub.add_parser("start", help="start an experiment from a YAML file")
    start.add_argument("file", metavar="FILE")
    start.add_argument("--as", dest="actor", default="ops", metavar="WHO")
    start.add_argument("--json", action="store_true")
    start.set_defaults(client_run=cmd_start)
    stop = sub.add_parser("stop", help="stop assigning new deals (assigned deals keep their version)")
    stop.add_argument("name", metavar="NAME")
    stop.add_argument("--as", dest="actor", default="ops", metavar="WHO")
    stop.add_argument("--json", action="store_true")
    stop.set_defaults(client_run=cmd_stop)
    ls = sub.add_parser("list", help="all experiments, running and stopped")
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(client_run=cmd_list)
    show = sub.add_parser("show", help="one experiment and how many deals each arm has")
    show.add_argument("name", metavar="NAME")
    show.add_argument("--json", action="store_true")
    show.set_defaults(client_run=cmd_show)
