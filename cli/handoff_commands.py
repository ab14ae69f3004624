"""`dealflow metrics handoffs`: time lost at each handoff between teams (store/handoffs.py; verdicts:
analytics/handoff_verdicts.py)."""

from __future__ import annotations

import argparse
from typing import Any

from analytics.handoff_verdicts import HandoffFigures, HandoffMetrics
from app.handoff_service import handoff_metrics
from app.readable import duration_text
from cli.arguments import UsageError
from cli.output import emit, print_table
from client.api import DealflowClient

# the options of plain `dealflow metrics` that `metrics handoffs` does not take
_NOT_TAKEN = ["version", "owner", "since", "until", "as_of", "csv", "experiment"]


def check_handoffs(args: argparse.Namespace) -> None:
    ignored = ["--" + name.replace("_", "-") for name in _NOT_TAKEN if getattr(args, name, None)]
    if ignored:
        raise UsageError(f"metrics handoffs does not take {', '.join(ignored)}")


async def run_handoffs(args: argparse.Namespace) -> None:
    async with await DealflowClient.connect() as c:
        found = await handoff_metrics(c, args.process)
    if args.json:
        emit(found.model_dump(mode="json"))
        return
    print_handoffs(found)


def _row(f: HandoffFigures, *first: Any) -> list[Any]:
    return [
        *first,
        f.handoffs,
        f.taken_up,
        f.waiting,
        f.passed_on,
        f.ended,
        duration_text(f.median_seconds),
        duration_text(f.p90_seconds),
    ]


_COLUMNS = ["handoffs", "taken up", "waiting", "passed on", "ended", "median lost", "p90 lost"]


def print_handoffs(m: HandoffMetrics) -> None:
    if not m.processes:
        print("no handoffs recorded")
        return
    for p in m.processes:
        print(
            f"\n{p.process}: {p.handoffs} handoffs, {p.taken_up} taken up by the new owner"
            f" (time lost: median {duration_text(p.median_seconds)}, p90 {duration_text(p.p90_seconds)}),"
            f" {p.waiting} still waiting, {p.passed_on} passed on, {p.ended} ended first"
        )
        print_table(["team", *_COLUMNS], [_row(t, t.team) for t in m.teams if t.process == p.process])
        stages = [s for s in m.stages if s.process == p.process]
        print_table(["stage", "team", *_COLUMNS, "verdict"], [[*_row(s, s.stage, s.team), s.verdict] for s in stages])


def add_parser(metrics: Any) -> None:
    """`handoffs` under `dealflow metrics` (its subcommands' parser)."""
    h = metrics.add_parser("handoffs", help="time lost at handoffs between teams, until the new owner's first action")
    # SUPPRESS: an option also given before the subcommand (`metrics --json handoffs`) keeps its value
    h.add_argument("--process", default=argparse.SUPPRESS, help="one process (default: every process)")
    h.add_argument("--json", action="store_true", default=argparse.SUPPRESS)
    h.set_defaults(run=run_handoffs, check=check_handoffs)
