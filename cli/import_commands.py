"""`dealflow import salesforce | hubspot | pipedrive | csv`: bring a CRM's deals over;
`dealflow import runs`: how the latest runs ended.

Exit codes: 0 every row taken (or, with --dry-run, nothing wrong found); 1 some rows could not be
taken (each is listed with its file and line; the others were imported, and running the same
import again adds only what was missing), or the mapping is wrong (nothing imported).
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from tqdm import tqdm

from app import import_service
from cli.arguments import UsageError
from cli.output import emit, print_table
from client.api import DealflowClient

EXIT_REFUSED = 1


async def cmd_import(args: argparse.Namespace, c: DealflowClient) -> None:
    files = [args.opportunities, args.history] if args.source == "salesforce" else [args.file]
    the_plan, described = await import_service.read(
        c,
        args.source,
        files,
        process=args.process,
        mapping_file=args.map,
        time_zone=args.time_zone,
        pipeline=getattr(args, "pipeline", None),
        delimiter="\t" if args.delimiter in ("\\t", "tab") else args.delimiter,
        encoding=args.encoding,
    )
    bars: dict[str, tqdm[Any]] = {}

    def progress(what: str, done: int, of: int) -> None:
        if args.json:
            return
        bar = bars.get(what)
        if bar is None:
            bar = bars[what] = tqdm(total=of, desc=what, unit="deal", file=sys.stderr, leave=True)
        bar.update(done - bar.n)

    try:
        report = await import_service.run(
            c, the_plan, described, actor=args.actor, dry_run=args.dry_run, effects=args.effects, progress=progress
        )
    finally:
        for bar in bars.values():
            bar.close()
    if args.json:
        emit(report.model_dump(mode="json"))
    else:
        _print(report)
    if report.problems:
        raise SystemExit(EXIT_REFUSED)


async def cmd_runs(args: argparse.Namespace, c: DealflowClient) -> None:
    if args.limit < 1:
        raise UsageError(f"--limit {args.limit}: give a number of runs, 1 or more")
    found = await import_service.runs(c, args.limit)
    if args.json:
        emit(found)
        return
    rows = []
    for r in found:
        n = r["counts"]
        done = f"{n.get('started', 0)} started, {n.get('recorded', 0)} recorded" if n else ""
        started, what = r["started_at"].isoformat(timespec="seconds"), f"{r['source']} into {r['process']}"
        rows.append([started, r["status"], what, r["started_by"], done, r["import_id"], r["error"] or ""])
    print_table(["started", "status", "import", "by", "did", "id", "error"], rows)


def _print(r: import_service.ImportReport) -> None:
    verb = "would" if r.dry_run else "did"
    print(f"{r.source} export into {r.process}@{r.version}: {r.rows} rows read")
    if r.already_imported:
        print(f"{r.already_imported} deal(s) were imported before and are left as they are")
    if r.starts_per_stage:
        print(f"open deals that {verb} start, per stage:")
        print_table(["stage", "deals"], [[stage, n] for stage, n in r.starts_per_stage.items()])
    closed = ", ".join(f"{n} {status}" for status, n in r.closed.items()) or "none"
    print(f"closed deals that {verb} go in as history: {closed}")
    m = r.messages
    print(
        f"effects {r.effects}: the open deals {verb} send at once {m['reminders']} reminder(s), "
        f"{m['escalations']} escalation(s) and start {m['cadences']} buyer cadence(s)"
    )
    if not r.dry_run:
        print(f"started {r.started} open deal(s), recorded {r.recorded} closed deal(s) (import {r.import_id})")
    for problem in r.problems:
        print(f"cannot take: {problem}", file=sys.stderr)
    if r.problems:
        print(f"{len(r.problems)} problem(s); fix them and run the same import again", file=sys.stderr)


def add_parser(top: Any) -> None:
    imp = top.add_parser("import", help="bring deals over from a CRM export (docs/import.md)")
    sub = imp.add_subparsers(dest="source", required=True)
    me = os.environ.get("DEALFLOW_USER", "ops")

    def common(p: argparse.ArgumentParser, mapping_required: bool) -> None:
        p.add_argument("--process", required=True, metavar="NAME", help="the deployed process the deals join")
        p.add_argument("--map", required=mapping_required, metavar="FILE", help="CRM stages, reasons, owners -> ours")
        p.add_argument("--dry-run", action="store_true", help="say what would happen and list every bad row")
        p.add_argument("--time-zone", default="UTC", metavar="ZONE", help="for times the export gives without one")
        p.add_argument("--delimiter", default=",", metavar="CHAR", help="the export's cell separator (';', '\\t')")
        p.add_argument("--encoding", default="utf-8-sig", metavar="NAME", help="the export's text encoding (cp1252)")
        p.add_argument(
            "--effects",
            choices=["none", "future", "all"],
            default="future",
            help="what open deals send for their past: future (default) only what falls due after the import; "
            "none nothing until a rep moves the deal; all every overdue reminder, escalation and cadence at once",
        )
        p.add_argument("--as", dest="actor", default=me, metavar="WHO")
        p.add_argument("--json", action="store_true")
        p.set_defaults(client_run=cmd_import)

    sf = sub.add_parser("salesforce", help="Opportunity.csv and OpportunityHistory.csv")
    sf.add_argument("--opportunities", required=True, metavar="FILE")
    sf.add_argument("--history", required=True, metavar="FILE")
    common(sf, True)
    hs = sub.add_parser("hubspot", help="the deals export, with its per-stage date columns")
    hs.add_argument("file", metavar="FILE")
    hs.add_argument("--pipeline", required=True, metavar="NAME")
    common(hs, True)
    pd = sub.add_parser("pipedrive", help="the deals export (current stage, no history)")
    pd.add_argument("file", metavar="FILE")
    common(pd, True)
    gen = sub.add_parser("csv", help="one row per stage change: deal_id, stage, entered_at, owner, value, facts...")
    gen.add_argument("file", metavar="FILE")
    common(gen, False)
    runs = sub.add_parser("runs", help="the latest import runs, newest first, and how each ended")
    runs.add_argument("--limit", type=int, default=20, metavar="N")
    runs.add_argument("--json", action="store_true")
    runs.set_defaults(client_run=cmd_runs)
