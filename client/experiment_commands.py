"""`dealflow experiments ...`: start, list, show, stop."""

from __future__ import annotations

import argparse
from typing import Any

from client.api import DealflowClient, Refused
from client.output import emit, print_table
from definitions.experiment import load_experiment
from definitions.loader import DefinitionError
from store.experiments import ExperimentRecord


def _json(r: ExperimentRecord, counts: dict[str, int] | None = None) -> dict[str, Any]:
    e = r.experiment
    return {
        "experiment": e.name,
        "process": e.process,
        "description": e.description,
        "arms": [{"version": a.version, "weight": a.weight, "deals": (counts or {}).get(a.version, 0)} for a in e.arms],
        "started_by": r.started_by,
        "started_at": r.started_at.isoformat(),
        "stopped_by": r.stopped_by,
        "stopped_at": r.stopped_at.isoformat() if r.stopped_at else None,
        "running": r.running,
    }


async def _counts(c: DealflowClient, name: str) -> dict[str, int]:
    rows = await c.pool.fetch(
        "SELECT start_version, count(*) AS n FROM deals WHERE experiment = $1 GROUP BY start_version", name
    )
    return {r["start_version"]: r["n"] for r in rows}


async def cmd_start(args: argparse.Namespace, c: DealflowClient) -> None:
    try:
        exp = load_experiment(args.file)
    except DefinitionError as exc:
        raise Refused(str(exc), code="invalid_experiment") from None
    record = await c.start_experiment(exp, started_by=args.actor)
    if args.json:
        emit(_json(record))
        return
    split = ", ".join(f"{a.version} (weight {a.weight})" for a in exp.arms)
    print(f"experiment {exp.name} running on {exp.process}: new deals go to {split}")


async def cmd_stop(args: argparse.Namespace, c: DealflowClient) -> None:
    record = await c.stop_experiment(args.name, stopped_by=args.actor)
    if args.json:
        emit(_json(record))
        return
    print(f"experiment {args.name} stopped; new deals of {record.experiment.process} take the latest version again")


async def cmd_list(args: argparse.Namespace, c: DealflowClient) -> None:
    from store import experiments

    records = await experiments.list_all(c.pool)
    if args.json:
        emit([_json(r, await _counts(c, r.experiment.name)) for r in records])
        return
    print_table(
        ["experiment", "process", "arms", "started", "status"],
        [
            [
                r.experiment.name,
                r.experiment.process,
                ", ".join(f"{a.version}x{a.weight}" for a in r.experiment.arms),
                f"{r.started_at:%Y-%m-%d %H:%M} by {r.started_by}",
                "running" if r.running else f"stopped {r.stopped_at:%Y-%m-%d %H:%M}",
            ]
            for r in records
        ],
    )


async def cmd_show(args: argparse.Namespace, c: DealflowClient) -> None:
    record = await c.experiment(args.name)
    counts = await _counts(c, args.name)
    if args.json:
        emit(_json(record, counts))
        return
    e = record.experiment
    state = "running" if record.running else f"stopped at {record.stopped_at:%Y-%m-%d %H:%M} by {record.stopped_by}"
    started = f"{record.started_at:%Y-%m-%d %H:%M} by {record.started_by}"
    print(f"experiment {e.name} on {e.process}, started {started}, {state}")
    if e.description:
        print(e.description)
    total = sum(a.weight for a in e.arms)
    print_table(
        ["version", "weight", "share", "deals so far"],
        [[a.version, a.weight, f"{a.weight / total:.0%}", counts.get(a.version, 0)] for a in e.arms],
    )
    print(f"compare them: dealflow metrics compare --experiment {e.name}")


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
