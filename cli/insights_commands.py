"""`dealflow metrics reps`, `metrics by-fact`, `metrics persistence`: subcommands of `metrics`,
added to its parser from here so that the metrics commands stay one module's concern."""

from __future__ import annotations

import argparse
from typing import Any

from analytics.follow_up_persistence import GIVE_UP_AFTER, AnswersAfter, Figures
from analytics.verdicts import Compared, p_text
from app import insights_service
from app.insights_service import MAX_BUCKETS, InsightQuery, fact_ref
from app.readable import duration_text, pct
from cli.arguments import UsageError, instant
from cli.output import emit, print_table
from client.api import DealflowClient
from store.fact_outcomes import FactOutcomes
from store.follow_up_persistence import Persistence
from store.rep_strength import RepStrength

# options of plain `dealflow metrics` that none of these take (the process is their argument)
_NOT_TAKEN = ["process", "owner", "csv", "experiment"]
_FILTERS = ["version", "since", "until", "as_of"]


def _stage_fact(text: str) -> tuple[str, str]:
    try:
        return fact_ref(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _buckets(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if not 2 <= value <= MAX_BUCKETS:
        raise argparse.ArgumentTypeError(f"{text}: between 2 and {MAX_BUCKETS}")
    return value


def check(args: argparse.Namespace) -> None:
    """Rules between the options, before anything connects."""
    sub = args.metrics_sub
    not_taken = _NOT_TAKEN + ([] if sub == "reps" else _FILTERS)
    given = ["--" + name.replace("_", "-") for name in not_taken if getattr(args, name, None)]
    if given:
        hint = "; the process is its argument" if "--process" in given else ""
        raise UsageError(f"metrics {sub} does not take {', '.join(given)}{hint}")
    if args.since and args.until and args.since >= args.until:
        raise UsageError(f"--since {args.since.isoformat()} is not before --until {args.until.isoformat()}")


def _query(args: argparse.Namespace) -> InsightQuery:
    return InsightQuery(
        process=args.target,
        version=args.version,
        since=args.since,
        until=args.until,
        as_of=args.as_of,
    )


async def run(args: argparse.Namespace) -> None:
    async with await DealflowClient.connect() as c:
        if args.metrics_sub == "reps":
            found: Any = await insights_service.reps(c, _query(args))
        elif args.metrics_sub == "by-fact":
            ref = ".".join(args.fact)
            found = await insights_service.by_fact(c, _query(args), ref, buckets=args.buckets)
        else:
            # the text always shows each rep's giving up beside the estimate; JSON only when asked
            found = await insights_service.follow_up(c, _query(args), by_rep=args.by_rep or not args.json)
    if args.json:
        emit(found.model_dump(mode="json"))
    elif isinstance(found, RepStrength):
        print_reps(found)
    elif isinstance(found, FactOutcomes):
        print_by_fact(found)
    else:
        print_persistence(found, by_rep=args.by_rep)


def _ci(t: Compared) -> str:
    if t.rate is None or t.interval is None:
        return "-"
    return f"{t.rate:.0%} ({t.interval[0]:.0%}-{t.interval[1]:.0%})"


def _p(t: Compared) -> str:
    return "-" if t.p_adjusted is None else p_text(t.p_adjusted).removeprefix("p=").removeprefix("p")


def _short(t: Compared) -> str:
    """The table's verdict column: what was found, briefly; the full words are printed below."""
    if t.significant:
        return "better" if (t.rate or 0) > (t.rest_rate or 0) else "worse"
    needs = f"; ~{t.needed:,} needed" if t.needed else ""
    return ("can't tell" if t.test else "too few deals") + needs


def _scope(found: RepStrength | FactOutcomes | Persistence) -> str:
    f = found.filters
    parts = [f"version {f.version}" if f.version else "all versions"]
    bounds = (("since", f.since), ("until", f.until), ("as-of", f.as_of))
    parts += [f"{name} {value:%Y-%m-%d %H:%M}" for name, value in bounds if value]
    return ", ".join(parts)


def _verdicts(verdicts: list[str], alpha: float) -> None:
    if not verdicts:
        print(
            f"\nno verdicts: not enough data to tell any of them from the rest (family-wise alpha {alpha:g}, Holm); "
            "--json says what each would need"
        )
        return
    print("\nverdicts:")
    for v in verdicts:
        print(f"  {v}")


def print_reps(r: RepStrength) -> None:
    print(f"phase strength per rep: {r.filters.process} ({_scope(r)})")
    for ph in r.phases:
        print(
            f"\n{ph.phase}: {ph.entered} deals entered, {ph.settled} settled, conversion {pct(ph.conversion)}, "
            f"median time {duration_text(ph.median_seconds)}"
        )
        print_table(
            ["rep", "entered", "open", "conv. (95% CI)", "median", "rest", "p adj.", "verdict"],
            [
                [
                    x.rep,
                    x.entered,
                    x.open,
                    _ci(x.conversion),
                    duration_text(x.median_seconds),
                    pct(x.conversion.rest_rate),
                    _p(x.conversion),
                    _short(x.conversion),
                ]
                for x in ph.reps
            ],
        )
    _verdicts(r.verdicts, r.alpha)


def print_by_fact(f: FactOutcomes) -> None:
    print(f"{f.stage}.{f.fact} ({f.type}) in {f.filters.process} ({_scope(f)})")
    conv = f"out of {f.next_stage}" if f.next_stage else None
    headers = ["value", "deals", "open"]
    if conv:
        headers += [f"conv. {conv} (95% CI)", "p adj."]
    headers += ["won", "lost", "share of wins", "win rate (95% CI)", "p adj."]
    rows = []
    for v in f.values:
        row: list[object] = [v.label, v.deals, v.open]
        if v.conversion is not None:
            row += [_ci(v.conversion), _p(v.conversion)]
        won, lost = v.win_rate.successes, v.win_rate.n - v.win_rate.successes
        row += [won, lost, pct(v.won_share), _ci(v.win_rate), _p(v.win_rate)]
        rows.append(row)
    print_table(headers, rows)
    for name, overall in (("conversion", f.conversion_overall), ("win rate", f.win_rate_overall)):
        if overall is not None:
            print(f"{name}, all values at once: {overall.test} {p_text(overall.p)}")
    for note in f.notes:
        print(f"note: {note}")
    _verdicts(f.verdicts, f.alpha)


def _figures_line(g: Figures) -> str:
    o = g.outcomes
    return (
        f"{g.deals} deals with a follow-up cadence: {o['reply']} replied, {o['won']} won, {o['lost']} lost, "
        f"{o['opted_out']} opted out, {o['open']} open"
    )


def print_persistence(p: Persistence, *, by_rep: bool = False) -> None:
    g = p.overall
    print(f"follow-up persistence: {p.filters.process} ({_scope(p)})")
    print(_figures_line(g))
    print("\ntouches sent before the outcome:")
    print_table(
        ["touches", "replied", "won", "lost", "opted out", "open (so far)"],
        [[r.touches, r.reply, r.won, r.lost, r.opted_out, r.open] for r in g.distribution],
    )
    print(
        "\nhow many touches buyers take to answer (Kaplan-Meier over touches: each deal counts while it was "
        "followed up; 95% intervals):"
    )
    for x in g.answers_after:
        five = " (five or more)" if x.after == 4 else ""
        print(f"  after {x.after}{five}: {x.words}")
    if g.horizon is not None and g.not_answered_by_horizon is not None:
        print(
            f"a seller who gives up after k touches loses that share of the answers; "
            f"{pct(g.not_answered_by_horizon)} of the buyers had not answered after {g.horizon} touches"
        )
    keys = list(g.gave_up.after)
    print("\ngiven up (lost with no answer), by touches sent:")
    rows = [["all reps", g.deals, g.gave_up.deals, *[pct(g.gave_up.shares[k]) for k in keys]]]
    rows += [[r.rep, r.deals, r.gave_up.deals, *[pct(r.gave_up.shares[k]) for k in keys]] for r in p.by_rep or []]
    print_table(["rep", "followed up", "gave up", *[f"after {k}" for k in keys]], rows)
    if by_rep and p.by_rep is not None:
        print("\nanswers after k touches, per rep (of the answers within each rep's own horizon):")
        print_table(
            ["rep", "answered", *[f"after {k}" for k in GIVE_UP_AFTER]],
            [[r.rep, r.answered, *[_share(x) for x in r.answers_after]] for r in p.by_rep],
        )


def _share(x: AnswersAfter) -> str:
    if x.share is None or x.interval is None:
        return f"can't say ({x.went_past} past)"
    return f"{x.share:.0%} ({x.interval[0]:.0%}-{x.interval[1]:.0%})"


def add_parsers(top: Any) -> None:
    """The three subcommands, under the `metrics` parser that `cli.metrics_commands` made."""
    metrics = top.choices["metrics"]
    sub = next(a for a in metrics._actions if isinstance(a, argparse._SubParsersAction))
    # SUPPRESS: an option also given before the subcommand (`metrics --json reps ...`) keeps its value
    reps = sub.add_parser("reps", help="phase strength per rep: each rep against the rest of the team, per phase")
    reps.add_argument("target", metavar="PROCESS")
    reps.add_argument("--version", default=argparse.SUPPRESS)
    for flag in ("--since", "--until", "--as-of"):
        reps.add_argument(flag, type=instant, metavar="DATE", default=argparse.SUPPRESS)
    bf = sub.add_parser("by-fact", help="which value of a stage's fact wins: conversion and win rate per value")
    bf.add_argument("target", metavar="PROCESS")
    bf.add_argument("fact", metavar="STAGE.FACT", type=_stage_fact)
    bf.add_argument("--buckets", type=_buckets, default=4, metavar="N", help="number facts: N buckets (default 4)")
    pe = sub.add_parser(
        "persistence", help="touches before a reply, a win or a loss; answers after k touches; when reps gave up"
    )
    pe.add_argument("target", metavar="PROCESS")
    pe.add_argument("--by-rep", action="store_true", help="the figures per rep as well")
    for p in (reps, bf, pe):
        p.add_argument("--json", action="store_true", default=argparse.SUPPRESS)
        p.set_defaults(run=run, check=check)
