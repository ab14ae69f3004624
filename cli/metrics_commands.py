"""`dealflow metrics`, `dealflow metrics compare`, `dealflow report`."""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path
from typing import Any

from analytics.version_comparison import Comparison
from app import metrics_service
from app.metrics_service import MetricsQuery
from app.readable import duration_text, pct
from cli.arguments import UsageError, instant, process_ref
from cli.handoff_commands import add_parser as add_handoffs
from cli.output import emit, print_table
from client.api import DealflowClient
from definitions.loader import PinnedDefinition
from store.metrics import Durations, Metrics


async def metrics_for(c: DealflowClient, args: argparse.Namespace) -> list[tuple[PinnedDefinition, Metrics]]:
    query = MetricsQuery(
        process=args.process,
        version=args.version,
        owner=args.owner,
        since=args.since,
        until=args.until,
        as_of=args.as_of,
        experiment=args.experiment,
    )
    return await metrics_service.metrics(c, query)


def _dur(d: Durations) -> list[str]:
    return [duration_text(d.median), duration_text(d.p90), duration_text(d.mean)]


def print_metrics(pinned: PinnedDefinition, m: Metrics) -> None:
    f = m.filters
    scope = ", ".join(f"{k} {v}" for k, v in f.model_dump().items() if v is not None and k != "process")
    versions = "all versions" if not f.version else "version " + f.version
    print(f"\n{pinned.name} ({versions}{', ' + scope if scope else ''})")
    g = m.deals
    print(
        f"deals {g.deals}: won {g.won}, lost {g.lost}, open {g.open}; win rate {pct(g.win_rate)}; "
        f"cycle time median {duration_text(g.cycle_time.median)}, p90 {duration_text(g.cycle_time.p90)}; "
        f"weighted pipeline {g.weighted_pipeline:,.0f}"
    )
    tpw = "-" if g.touches_per_won_deal is None else f"{g.touches_per_won_deal:.1f}"
    print(
        f"touches per won deal {tpw}; deals with 5+ touches {pct(g.share_five_or_more_touches)} "
        f"of {g.deals_with_cadence} with a cadence"
    )
    print_table(
        [
            "stage",
            "phase",
            "entered",
            "completed",
            "skipped",
            "back",
            "lost",
            "conv. next",
            "conv. later",
            "median",
            "p90",
            "mean",
            "cum. median",
            "SLA breaches",
            "escalations",
        ],
        [
            [
                s.stage,
                s.phase,
                s.entered,
                s.completed,
                s.skipped,
                s.moved_back,
                s.lost,
                pct(s.conversion_strict),
                pct(s.conversion_any_later),
                *_dur(s.first_entry),
                duration_text(s.cumulative.median),
                s.sla_breaches,
                s.escalations,
            ]
            for s in m.stages
        ],
    )
    print_table(
        ["phase", "entered", "lost", "converted", "conversion", "median", "p90", "mean"],
        [[p.phase, p.entered, p.lost, p.converted, pct(p.conversion), *_dur(p.time_in_phase)] for p in m.phases],
    )
    reasons = {s.stage: s.lost_reasons for s in m.stages if s.lost_reasons}
    if reasons:
        print(
            "lost reasons: "
            + "; ".join(f"{st}: " + ", ".join(f"{r} {n}" for r, n in rs.items()) for st, rs in reasons.items())
        )


def write_csv(results: list[tuple[PinnedDefinition, Metrics]]) -> None:
    w = csv.writer(sys.stdout)
    w.writerow(
        [
            "process",
            "level",
            "name",
            "entered",
            "completed",
            "skipped",
            "moved_back",
            "lost",
            "converted_strict",
            "converted_any_later",
            "conversion_strict",
            "conversion_any_later",
            "median_s",
            "p90_s",
            "mean_s",
            "cumulative_median_s",
            "sla_breaches",
            "escalations",
        ]
    )
    for pinned, m in results:
        for s in m.stages:
            w.writerow(
                [
                    pinned.name,
                    "stage",
                    s.stage,
                    s.entered,
                    s.completed,
                    s.skipped,
                    s.moved_back,
                    s.lost,
                    s.converted_strict,
                    s.converted_any_later,
                    s.conversion_strict,
                    s.conversion_any_later,
                    s.first_entry.median,
                    s.first_entry.p90,
                    s.first_entry.mean,
                    s.cumulative.median,
                    s.sla_breaches,
                    s.escalations,
                ]
            )
        for p in m.phases:
            w.writerow(
                [
                    pinned.name,
                    "phase",
                    p.phase,
                    p.entered,
                    "",
                    "",
                    "",
                    p.lost,
                    "",
                    p.converted,
                    "",
                    p.conversion,
                    p.time_in_phase.median,
                    p.time_in_phase.p90,
                    p.time_in_phase.mean,
                    "",
                    "",
                    "",
                ]
            )


async def run_metrics(args: argparse.Namespace) -> None:
    async with await DealflowClient.connect() as c:
        if args.metrics_sub == "compare":
            return await run_compare(c, args)
        if args.metrics_sub == "customers":
            return await run_customers(c, args)
        results = await metrics_for(c, args)
    if args.json:
        emit([{"process": p.name, "version": m.filters.version, **m.model_dump(mode="json")} for p, m in results])
    elif args.csv:
        write_csv(results)
    else:
        for pinned, m in results:
            print_metrics(pinned, m)


async def run_customers(c: DealflowClient, args: argparse.Namespace) -> None:
    rows = await metrics_service.customers_of(c, args.process)
    if args.json:
        emit([r.model_dump(mode="json") for r in rows])
        return
    print_table(
        ["customer", "deals", "won", "lost", "open", "won value", "follow-ons", "follow-ons won", "processes"],
        [
            [
                r.customer,
                r.deals,
                r.won,
                r.lost,
                r.open,
                f"{r.won_value:,.0f}",
                r.follow_ons,
                r.follow_ons_won,
                ", ".join(r.processes),
            ]
            for r in rows
        ],
    )


# the options of plain `dealflow metrics` that `metrics compare` and `metrics customers` do not take
_FILTERS = {
    "compare": ["version", "owner", "since", "until", "as_of", "csv", "process"],
    "customers": ["version", "owner", "since", "until", "as_of", "csv", "experiment"],
}


def check_metrics(args: argparse.Namespace) -> None:
    """Rules between the options, checked before anything connects."""
    if args.metrics_sub:
        ignored = ["--" + name.replace("_", "-") for name in _FILTERS[args.metrics_sub] if getattr(args, name)]
        if ignored:
            raise UsageError(f"metrics {args.metrics_sub} does not take {', '.join(ignored)}")
    if args.metrics_sub == "compare":
        if args.experiment and (args.a or args.b):
            raise UsageError("metrics compare: give either two versions or --experiment, not both")
        if not args.experiment and not (args.a and args.b):
            raise UsageError("metrics compare needs PROCESS@V1 PROCESS@V2, or --experiment NAME")
        return
    if args.version and not args.process:
        raise UsageError("--version needs --process: a version belongs to one process")
    if args.since and args.until and args.since >= args.until:
        raise UsageError(f"--since {args.since.isoformat()} is not before --until {args.until.isoformat()}")


async def run_compare(c: DealflowClient, args: argparse.Namespace) -> None:
    if args.experiment:
        found = await metrics_service.compare_experiment(c, args.experiment)
        if args.json:
            emit(found.model_dump(mode="json"))
            return
        for n, result in enumerate(found.comparisons):
            if n:
                print()
            print(f"experiment {found.experiment}:")
            _print_comparison(result)
        return
    result = await metrics_service.compare_versions(c, args.a, args.b)
    if args.json:
        emit(result.model_dump(mode="json"))
        return
    _print_comparison(result)


def _print_comparison(result: Comparison) -> None:
    print(f"{result.a} ({result.deals[0]} deals) vs {result.b} ({result.deals[1]} deals)")
    print(f"win rate {pct(result.win_rate[0])} vs {pct(result.win_rate[1])}: {result.verdict}")
    print_table(
        [
            "stage",
            "entered",
            "conv. (95% CI)",
            "median",
            "entered",
            "conv. (95% CI)",
            "median",
            "p conv.",
            "p time",
            "verdict",
        ],
        [
            [
                s.stage,
                s.a.entered,
                _ci(s.a),
                duration_text(s.a.median_seconds),
                s.b.entered,
                _ci(s.b),
                duration_text(s.b.median_seconds),
                "-" if s.conversion_p is None else f"{s.conversion_p:.3f}",
                "-" if s.duration_p is None else f"{s.duration_p:.3f}",
                s.verdict,
            ]
            for s in result.stages
        ],
    )


def _ci(side: Any) -> str:
    if side.conversion is None or side.interval is None:
        return "-"
    return f"{side.conversion:.0%} ({side.interval[0]:.0%}-{side.interval[1]:.0%})"


async def run_report(args: argparse.Namespace) -> None:
    from cli.report import write_report

    async with await DealflowClient.connect() as c:
        path = await write_report(c, Path(args.out))
    print(f"report written: {path}")


def add_parsers(top: Any) -> None:
    m = top.add_parser("metrics", help="stage, phase and deal-set metrics from the event log")
    m.add_argument("--process")
    m.add_argument("--version")
    m.add_argument("--owner")
    m.add_argument("--since", type=instant, metavar="DATE")
    m.add_argument("--until", type=instant, metavar="DATE")
    m.add_argument("--as-of", type=instant, metavar="DATE")
    m.add_argument("--experiment", metavar="NAME", help="only the deals an experiment assigned")
    fmt = m.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true")
    fmt.add_argument("--csv", action="store_true")
    m.set_defaults(run=run_metrics, metrics_sub=None, check=check_metrics)
    sub = m.add_subparsers(dest="metrics_sub")
    cmp_ = sub.add_parser("compare", help="two versions (or processes) side by side, with significance tests")
    cmp_.add_argument("a", metavar="PROCESS@V1", nargs="?", type=process_ref)
    cmp_.add_argument("b", metavar="PROCESS@V2", nargs="?", type=process_ref)
    # SUPPRESS: an option also given before the subcommand (`metrics --json compare ...`) keeps its value
    cmp_.add_argument(
        "--experiment",
        metavar="NAME",
        default=argparse.SUPPRESS,
        help="the arms of an experiment, on the deals it assigned",
    )
    cmp_.add_argument("--json", action="store_true", default=argparse.SUPPRESS)
    cu = sub.add_parser("customers", help="per customer, across deals and their rebuy follow-ons")
    cu.add_argument("--process", default=argparse.SUPPRESS, help="customers with at least one deal of this process")
    cu.add_argument("--json", action="store_true", default=argparse.SUPPRESS)
    add_handoffs(sub)
    r = top.add_parser("report", help="an HTML report with charts")
    r.add_argument("--out", required=True, metavar="DIR")
    r.set_defaults(run=run_report)
