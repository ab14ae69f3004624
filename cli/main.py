"""The `dealflow` command line.

Exit codes: 0 done; 1 refused, invalid or not found (the reason is on stderr and nothing
changed); 2 wrong usage; 3 a server could not be reached, or a request's outcome is unknown (its
answer was lost until its deadline: repeat it with the --request-id the message names).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sys
from collections.abc import Awaitable, Callable, Sequence
from zoneinfo import ZoneInfo

from cli.action_commands import add_parsers as add_actions
from cli.arguments import UsageError, add_key_values, number, port, positive_int, process_ref, time_scale
from cli.audit_commands import add_parser as add_audit
from cli.definition_commands import add_parser as add_definitions
from cli.experiment_commands import add_parser as add_experiments
from cli.flags import with_flag
from cli.import_commands import add_parser as add_import
from cli.insights_commands import add_parsers as add_insights
from cli.metrics_commands import add_parsers as add_metrics
from cli.output import deal_row_json, emit, print_table, status_json
from cli.revision_commands import add_parser as add_revisions
from cli.token_commands import add_parser as add_tokens
from client.api import DealflowClient, DealflowError, NotFound, OutcomeUnknown, Refused, Unavailable
from worker import logs, tracing
from worker.settings import SettingsError, log_format

EXIT_REFUSED = 1
EXIT_USAGE = 2
EXIT_UNAVAILABLE = 3


# --- commands that need the servers --------------------------------------------------------


async def _with_client(fn: Callable[[DealflowClient], Awaitable[None]]) -> None:
    client = await DealflowClient.connect()
    try:
        await fn(client)
    finally:
        await client.close()


async def cmd_start(args: argparse.Namespace, c: DealflowClient) -> None:
    name, version = args.process
    started = await c.start_deal(
        name,
        args.deal_id,
        args.owner,
        actor=args.actor or args.owner,
        value=args.value,
        fields=args.field,
        version=version,
        time_scale=args.time_scale,
    )
    if args.json:
        emit(started.model_dump())
    else:
        print(f"started deal {started.deal_id} on {started.process_ref}, at stage {started.stage}")
        if not started.readable:
            print(
                f"note: reads do not find it yet (no worker has run it, or the log is slow); "
                f"'dealflow deal status {started.deal_id}' tells once they do"
            )


async def cmd_chain(args: argparse.Namespace, c: DealflowClient) -> None:
    linked = await c.chain(args.deal_id)
    if args.json:
        emit([d.model_dump(mode="json") for d in linked])
        return
    print_table(
        ["deal", "follows", "kind", "process", "status", "stage", "value", "customer"],
        [
            [
                "  " * d.depth + d.deal_id,
                d.follows or "-",
                d.follow_kind or "-",
                f"{d.process}@{d.version}",
                d.status,
                d.stage or "-",
                "-" if d.value is None else d.value,
                d.customer or "-",
            ]
            for d in linked
        ],
    )


async def cmd_status(args: argparse.Namespace, c: DealflowClient) -> None:
    status = await c.status(args.deal_id, min_seq=args.min_seq)
    if args.json:
        emit(status_json(status))
        return
    s = status.state
    print(f"deal {s.deal_id} ({status.process_ref}), owner {s.owner}, value {s.value if s.value is not None else '-'}")
    print(f"status: {s.status}{'' if status.running else ' (finished)'}; stage: {s.stage or '-'}")
    if s.stage_entered_at:
        print(f"in stage since {s.stage_entered_at:%Y-%m-%d %H:%M:%S %Z}")
    if status.missing_facts:
        print("to complete this stage, supply:")
        for f in status.missing_facts:
            options = f" [{', '.join(f.options)}]" if f.options else ""
            print(f"  --fact {f.fact}=<{f.type}>{options}  {f.question}")
    for stage, facts in s.facts.items():
        print(f"facts from {stage}: " + ", ".join(f"{k}={v}" for k, v in facts.items()))
    if status.log_failure is not None:
        print(f"WARNING: {status.log_failure.describe()}")
    if status.stale:
        print(f"WARNING: the log had not reached event {args.min_seq} within the wait: this is an older state")
    if status.pending:
        zone = ZoneInfo((await c.definition(s.process, s.version)).definition.timezone)
        print("next, unless something changes first:")
        for p in status.pending:
            print(f"  {p.due_at.astimezone(zone):%Y-%m-%d %H:%M %Z}  {p.text}")
    if status.running:
        window = c.log_flush_seconds
        print(f"as of event {s.last_seq} in the log (a running deal's log trails it by up to {window:g} s)")


async def cmd_events(args: argparse.Namespace, c: DealflowClient) -> None:
    events = await c.events(args.deal_id, min_seq=args.min_seq)
    if args.json:
        emit([e.model_dump(mode="json") for e in events])
        return
    rows = []
    for e in events:
        extra = {
            k: v
            for k, v in e.model_dump(mode="json").items()
            if k not in {"seq", "at", "actor", "stage", "request_id", "type", "schema_version"}
        }
        rows.append(
            [e.seq, f"{e.at:%Y-%m-%d %H:%M:%S}", e.type, e.stage or "", e.actor, json.dumps(extra) if extra else ""]
        )
    print_table(["seq", "at", "event", "stage", "actor", "details"], rows)


async def cmd_list(args: argparse.Namespace, c: DealflowClient) -> None:
    rows = await c.list_deals(
        stage=args.stage, owner=args.owner, process=args.process, status=args.status, limit=args.limit
    )
    if args.json:
        emit([deal_row_json(r) for r in rows])
        return
    print_table(
        ["deal", "process", "version", "owner", "status", "stage", "value", "in stage since"],
        [
            [
                r.deal_id,
                r.process,
                r.version,
                r.owner,
                r.status,
                r.stage or "-",
                "-" if r.value is None else r.value,
                f"{r.stage_entered_at:%Y-%m-%d %H:%M:%S}" if r.stage_entered_at else "-",
            ]
            for r in rows
        ],
    )


# --- commands that run servers or need none ------------------------------------------------


async def _until_signalled() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    return stop


async def cmd_dev(args: argparse.Namespace) -> None:
    from web.serve import serve, web_client_settings
    from web.settings import WebSettings
    from worker.endpoint import dev_endpoint, url
    from worker.run import run_worker
    from worker.stack import EmbeddedStack

    endpoint = dev_endpoint()
    web_settings = WebSettings.resolve(port=args.web_port)
    stack = EmbeddedStack(temporal_port=args.temporal_port, ui_port=args.ui_port, postgres_port=args.postgres_port)
    settings = stack.start()
    try:
        print(f"Temporal:   {settings.temporal_address} (UI {stack.ui_url or 'off'})")
        print(f"PostgreSQL: {settings.database_url}")
        if endpoint:
            print(f"Metrics:    {url(endpoint)}/metrics (health: /livez, /readyz)")
        stop = await _until_signalled()
        client = await DealflowClient.connect(web_client_settings(settings))
        try:
            web = asyncio.create_task(serve(web_settings, stop, client=client))
            print("worker running; Ctrl-C stops worker, web app, Temporal and PostgreSQL", flush=True)
            await asyncio.gather(run_worker(settings, stop, endpoint=endpoint), web)
        finally:
            await client.close()
    finally:
        stack.stop()
        print("stopped", flush=True)


async def cmd_worker(args: argparse.Namespace) -> None:
    from worker.run import run_worker
    from worker.settings import WORKER_METRICS_ADDRESS, Settings, metrics_address

    settings = Settings.resolve()
    endpoint = metrics_address(WORKER_METRICS_ADDRESS)
    print(
        f"worker: Temporal {settings.temporal_address}, queue {settings.task_queue} (settings from {settings.source})"
        + (f"; metrics and health on {endpoint[0]}:{endpoint[1]}" if endpoint else ""),
        flush=True,
    )
    await run_worker(settings, await _until_signalled(), endpoint=endpoint)


async def cmd_serve(args: argparse.Namespace) -> None:
    from web.serve import serve
    from web.settings import WebSettings

    await serve(WebSettings.resolve(host=args.host, port=args.port), await _until_signalled())


def serve_forever(args: argparse.Namespace) -> None:
    """The web server's event loop is uvloop's where it is installed (uvicorn[standard]): it
    parses and answers HTTP faster than the default loop."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(args.run(args))
        return
    uvloop.run(args.run(args))


def check_dev(args: argparse.Namespace) -> None:
    seen: dict[int, str] = {}
    for flag, value in [
        ("--temporal-port", args.temporal_port),
        ("--ui-port", args.ui_port),
        ("--postgres-port", args.postgres_port),
        ("--web-port", args.web_port),
    ]:
        if value is None:
            continue
        if value in seen:
            raise UsageError(f"{seen[value]} and {flag} are both {value}: each server needs a port of its own")
        seen[value] = flag


async def cmd_demo(args: argparse.Namespace) -> None:
    from cli.demo import run_demo

    await run_demo(deals=args.deals, seed=args.seed, concurrency=args.concurrency)


# --- parser --------------------------------------------------------------------------------


def _min_seq_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--min-seq",
        type=int,
        default=0,
        metavar="N",
        help="wait (a few seconds at most) until the log holds event N, e.g. the last_seq an action answered",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dealflow", description="Event-sourced sales processes on Temporal.")
    parser.add_argument("-v", "--verbose", action="store_true")
    top = parser.add_subparsers(dest="command", required=True)

    dev = top.add_parser("dev", help="run Temporal, PostgreSQL, a worker and the web app in the foreground")
    dev.add_argument("--temporal-port", type=port, default=7233)
    dev.add_argument("--ui-port", type=port, default=8233)
    dev.add_argument("--postgres-port", type=port, default=None)
    dev.add_argument("--web-port", type=port, default=None, help="the web app's (default 8000, $DEALFLOW_WEB_PORT)")
    dev.set_defaults(run=cmd_dev, check=check_dev)

    top.add_parser("worker", help="run a worker against TEMPORAL_ADDRESS and DATABASE_URL").set_defaults(run=cmd_worker)

    serve = top.add_parser("serve", help="the web app and the HTTP API (docs/web.md)")
    serve.add_argument("--host", default=None, help="default 127.0.0.1; another needs access control on")
    serve.add_argument("--port", type=port, default=None, help="default 8000 ($DEALFLOW_WEB_PORT)")
    serve.set_defaults(run=cmd_serve)

    demo = top.add_parser("demo", help="simulate a few hundred deals on the embedded stack")
    demo.add_argument("--deals", type=positive_int, default=300)
    demo.add_argument("--seed", type=int, default=7)
    demo.add_argument("--concurrency", type=positive_int, default=24)
    demo.set_defaults(run=cmd_demo)

    add_definitions(top)
    add_experiments(top)

    deal = top.add_parser("deal", help="act on deals").add_subparsers(dest="sub", required=True)
    start = deal.add_parser("start", help="start a deal")
    start.add_argument("--process", required=True, type=process_ref, metavar="NAME[@VERSION]")
    start.add_argument("--deal-id", required=True)
    start.add_argument("--owner", required=True, metavar="REP")
    start.add_argument("--as", dest="actor", default=None, metavar="WHO")
    start.add_argument("--value", type=number, default=None, metavar="AMOUNT")
    add_key_values(start, "--field")
    start.add_argument(
        "--time-scale",
        type=time_scale,
        default=1.0,
        metavar="X",
        help="trials and demos only: compress reminder and cadence waits by X (0 < X <= 1)",
    )
    start.add_argument("--json", action="store_true")
    start.set_defaults(client_run=cmd_start)

    add_actions(deal)

    status = deal.add_parser("status", help="a deal's state and what its stage still needs (from the log)")
    status.add_argument("deal_id", metavar="ID")
    _min_seq_arg(status)
    status.add_argument("--json", action="store_true")
    status.set_defaults(client_run=cmd_status)

    events = deal.add_parser("events", help="a deal's events (from the log)")
    events.add_argument("deal_id", metavar="ID")
    _min_seq_arg(events)
    events.add_argument("--json", action="store_true")
    events.set_defaults(client_run=cmd_events)

    ch = deal.add_parser("chain", help="a deal with the deals it follows on from and the follow-ons it started")
    ch.add_argument("deal_id", metavar="ID")
    ch.add_argument("--json", action="store_true")
    ch.set_defaults(client_run=cmd_chain)

    dl = deal.add_parser("list", help="deals from the current-state projection")
    dl.add_argument("--stage")
    dl.add_argument("--owner")
    dl.add_argument("--process")
    dl.add_argument("--status", choices=["open", "won", "lost"])
    dl.add_argument("--limit", type=positive_int, default=1000)
    dl.add_argument("--json", action="store_true")
    dl.set_defaults(client_run=cmd_list)
    add_audit(top)
    add_metrics(top)
    add_insights(top)
    add_revisions(top)
    add_tokens(top)
    add_import(top)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        logs.configure(log_format(), logging.INFO if args.verbose else logging.WARNING)
        if hasattr(args, "check"):  # rules between options, before anything starts or connects
            args.check(args)
        if hasattr(args, "run_sync"):
            args.run_sync(args)
        elif hasattr(args, "client_run"):
            asyncio.run(_with_client(lambda c: args.client_run(args, c)))
        elif args.command == "serve":
            serve_forever(args)
        else:
            asyncio.run(args.run(args))
    except UsageError as exc:
        print(f"dealflow: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except SettingsError as exc:
        print(f"dealflow: configuration: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except Unavailable as exc:
        print(f"dealflow: unavailable: {with_flag(exc)}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    except OutcomeUnknown as exc:
        print(f"dealflow: {with_flag(exc)}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    except (Refused, NotFound) as exc:
        print(f"dealflow: refused ({exc.code}): {with_flag(exc)}", file=sys.stderr)
        return EXIT_REFUSED
    except DealflowError as exc:
        print(f"dealflow: {with_flag(exc)}", file=sys.stderr)
        return EXIT_USAGE if exc.code == "bad_settings" else EXIT_REFUSED
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return _reader_gone()
    return 0


EXIT_READER_GONE = 141  # what a shell reports of a command killed by SIGPIPE (128 + 13)


def _reader_gone() -> int:
    """The reader of the output went away (`dealflow metrics ... | head`): stop quietly, as a
    Unix tool does. What is still buffered for stdout goes nowhere, so the final flush cannot
    fail again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return EXIT_READER_GONE


def entry() -> None:
    """The console script: exit with main()'s code without interpreter finalization, which can
    crash while Temporal's native runtime threads (a Replayer's, a worker's) are still alive."""
    code = main()
    tracing.flush()
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        code = _reader_gone()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    entry()
