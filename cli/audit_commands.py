"""`dealflow audit ...`: replay, timeline, as-of, verify, export.

Replay and verify also work offline on exported files (`--from-json`), for auditors who cannot
reach the live system; they exit non-zero when anything fails to replay or does not match.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from temporalio.client import WorkflowHistory

from app import audit_service
from audit import bundle as bundles
from audit.history import AuditError, deal_events, in_flight, load_json
from audit.replay import replay
from audit.timeline import timeline
from audit.verify import verify
from cli.arguments import UsageError, instant, positive_int
from cli.output import emit, print_table
from client.api import DealflowClient, DealflowError


class AuditFailed(DealflowError):
    code = "audit_failed"


def _files(paths: list[str] | None) -> list[tuple[list[WorkflowHistory], dict[str, Any] | None]]:
    try:
        return [load_json(Path(p)) for p in paths or []]
    except AuditError as exc:
        raise DealflowError(str(exc), code="unreadable") from None


async def _deal_ids(c: DealflowClient, args: argparse.Namespace, *, log_too: bool) -> list[str]:
    """The deals named, or with --all those Temporal lists, and with `log_too` the log's as well."""
    if not args.all:
        return list(args.deal_ids)
    choose = audit_service.deals_to_verify if log_too else audit_service.deals_in_temporal
    return await choose(c, process=args.process, since=args.since)


async def run_replay(args: argparse.Namespace) -> None:
    histories = [h for hs, _ in _files(args.from_json) for h in hs]
    if args.deal_ids or args.all:
        async with await DealflowClient.connect() as c:
            for deal in await _deal_ids(c, args, log_too=False):
                histories += await audit_service.histories(c, deal)
    if not histories:
        raise DealflowError("nothing to replay: no deal matched and no file held a history", code="not_found")
    results = await replay(histories, progress=not args.json)
    failed = [r for r in results if not r.ok]
    if args.json:
        emit([r.__dict__ | {"ok": r.ok} for r in results])
    else:
        for r in failed:
            print(f"FAILED {r.workflow_type} {r.workflow_id} (run {r.run_id}): {r.error}")
        kinds = sorted({r.workflow_type for r in results})
        print(
            f"replayed {len(results)} histories ({', '.join(kinds)}): {len(results) - len(failed)} clean, "
            f"{len(failed)} failed"
        )
    if failed:
        raise AuditFailed(f"{len(failed)} of {len(results)} histories do not replay against the current code")


async def run_timeline(args: argparse.Namespace) -> None:
    if args.from_json:
        histories = [h for hs, _ in _files([args.from_json]) for h in hs]
        entries = timeline(histories)
    else:
        async with await DealflowClient.connect() as c:
            entries = await audit_service.deal_timeline(c, args.deal_id)
    if args.json:
        emit([e.as_dict() for e in entries])
        return
    print_table(
        ["at", "seq", "kind", "what", "actor", "stage", "request id", "details"],
        [
            [
                f"{e.at:%Y-%m-%d %H:%M:%S}",
                e.seq or "",
                e.kind,
                e.what,
                e.actor,
                e.stage or "",
                e.request_id or "",
                json.dumps(e.details, ensure_ascii=False)[:100],
            ]
            for e in entries
        ],
    )


async def run_as_of(args: argparse.Namespace) -> None:
    at = args.at
    async with await DealflowClient.connect() as c:
        state = await audit_service.state_as_of(c, args.deal_id, at)
    if args.json:
        emit(state.model_dump(mode="json"))
        return
    print(f"deal {state.deal_id} as of {at.isoformat()} (after event {state.last_seq}):")
    since = state.stage_entered_at.isoformat() if state.stage_entered_at else "-"
    print(f"  status {state.status}, stage {state.stage or '-'} since {since}, owner {state.owner}")
    print(f"  touches {state.touches}, SLA breaches {state.sla_breaches}, cadence {state.cadence or '-'}")
    for stage, facts in state.facts.items():
        print(f"  facts from {stage}: " + ", ".join(f"{k}={v}" for k, v in facts.items()))


async def run_verify(args: argparse.Namespace) -> None:
    verdicts = []
    for histories, data in _files(args.from_json):
        if data is None:
            raise UsageError("verify --from-json needs a bundle written by 'dealflow audit export'")
        verdicts.append(
            verify(data["deal_id"], bundles.log_rows(data), deal_events(histories), in_flight=in_flight(histories))
        )
    if args.deal_ids or args.all:
        async with await DealflowClient.connect() as c:
            for deal in await _deal_ids(c, args, log_too=True):
                verdicts.append(await audit_service.verify_running(c, deal))
    if not verdicts:
        raise DealflowError("nothing to verify: no deal matched", code="not_found")
    if args.json:
        emit(
            [
                {
                    "deal_id": v.deal_id,
                    "ok": v.ok,
                    "log_events": v.log_events,
                    "history_events": v.history_events,
                    "problems": v.problems,
                    "findings": [f.as_dict() for f in v.findings],
                    "notes": v.notes,
                }
                for v in verdicts
            ]
        )
    else:
        for v in verdicts:
            mark = "ok" if v.ok else "MISMATCH"
            print(
                f"{mark:8} deal {v.deal_id}: {v.log_events} events in the log, {v.history_events} in Temporal's history"
            )
            for p in v.problems:
                print(f"         {p}")
            for n in v.notes:
                print(f"         note: {n}")
    bad = [v for v in verdicts if not v.ok]
    if bad:
        raise AuditFailed(f"{len(bad)} of {len(verdicts)} deals do not verify: " + ", ".join(v.deal_id for v in bad))


async def run_repair(args: argparse.Namespace) -> None:
    """For every deal chosen, the events its log lacks after its last, from Temporal's history."""
    filled: dict[str, int] = {}
    async with await DealflowClient.connect() as c:
        for deal in await _deal_ids(c, args, log_too=False):
            filled[deal] = await audit_service.repair(c, deal)
    if args.json:
        emit([{"deal_id": d, "appended": n} for d, n in filled.items()])
        return
    for deal, n in filled.items():
        if n:
            print(f"repaired deal {deal}: {n} events appended from Temporal's history")
    print(f"{sum(1 for n in filled.values() if n)} of {len(filled)} deals repaired, {sum(filled.values())} events")


async def run_export(args: argparse.Namespace) -> None:
    async with await DealflowClient.connect() as c:
        data = await audit_service.export(c, args.deal_id)
    try:
        bundles.write(data, Path(args.out))
    except AuditError as exc:
        raise DealflowError(str(exc)) from None
    print(
        f"wrote {args.out}: {len(data['histories'])} histories, {len(data['event_log'])} event-log rows, definition "
        f"{data['definition'].get('definition', {}).get('name', '?')}@{data['definition'].get('version', '?')}"
    )


def _deal_selection(p: argparse.ArgumentParser, files: str) -> argparse.ArgumentParser:
    """Which deals a replay or verify covers: named, all (of a process, since a time), or files."""
    p.add_argument("deal_ids", nargs="*", metavar="DEAL_ID")
    p.add_argument("--all", action="store_true")
    p.add_argument("--process", help="with --all: only deals of this process")
    p.add_argument("--since", type=instant, metavar="TIME", help="with --all: only deals started since")
    p.add_argument("--from-json", action="append", metavar=files)
    p.add_argument("--json", action="store_true")
    p.set_defaults(check=_check_selection)
    return p


def _check_selection(args: argparse.Namespace) -> None:
    what = f"audit {args.sub}"
    if not args.all and (args.process or args.since):
        raise UsageError(f"{what}: --process and --since choose among --all; add --all")
    if args.all and args.deal_ids:
        raise UsageError(f"{what}: name deals or give --all, not both")
    if not (args.deal_ids or args.all or args.from_json):
        raise UsageError(f"{what}: nothing to {args.sub}: name deals, --all, or --from-json FILE")


def _check_repair(args: argparse.Namespace) -> None:
    if args.from_json:
        raise UsageError("audit repair: --from-json has no log to repair; name deals or give --all")
    _check_selection(args)


async def run_access(args: argparse.Namespace) -> None:
    async with await DealflowClient.connect() as c:
        rows = await audit_service.refusals(c, since=args.since, limit=args.limit)
    if args.json:
        emit([r.model_dump(mode="json") for r in rows])
        return
    print_table(
        ["at", "actor", "role", "action", "target", "reason"],
        [[f"{r.at:%Y-%m-%d %H:%M:%S}", r.actor, r.role or "-", r.action, r.target or "-", r.reason] for r in rows],
    )


def add_parser(top: Any) -> None:
    audit = top.add_parser("audit", help="replay, timeline, as-of, verify, export").add_subparsers(
        dest="sub", required=True
    )
    rp = _deal_selection(audit.add_parser("replay", help="replay histories against the current workflow code"), "FILE")
    rp.set_defaults(run=run_replay)
    tl = audit.add_parser("timeline", help="who did what and when, from Temporal's history")
    tl.add_argument("deal_id", metavar="DEAL_ID")
    tl.add_argument("--from-json", metavar="FILE")
    tl.add_argument("--json", action="store_true")
    tl.set_defaults(run=run_timeline)
    ao = audit.add_parser("as-of", help="a deal's state at an instant")
    ao.add_argument("deal_id", metavar="DEAL_ID")
    ao.add_argument("--at", required=True, type=instant, metavar="TIMESTAMP")
    ao.add_argument("--json", action="store_true")
    ao.set_defaults(run=run_as_of)
    vf = _deal_selection(
        audit.add_parser("verify", help="event log against Temporal's history, and its hash chain"), "BUNDLE"
    )
    vf.set_defaults(run=run_verify)
    rr = _deal_selection(
        audit.add_parser("repair", help="append what a deal's log lacks after its last event, from Temporal's history"),
        "FILE",
    )
    rr.set_defaults(run=run_repair, check=_check_repair)
    ex = audit.add_parser("export", help="a self-contained bundle for offline replay and verify")
    ex.add_argument("deal_id", metavar="DEAL_ID")
    ex.add_argument("--out", required=True, metavar="FILE")
    ex.set_defaults(run=run_export)
    ac = audit.add_parser("access", help="requests refused for want of a permission, newest first")
    ac.add_argument("--since", type=instant, metavar="TIMESTAMP")
    ac.add_argument("--limit", type=positive_int, default=1000)
    ac.add_argument("--json", action="store_true")
    ac.set_defaults(run=run_access)
