"""`dealflow definitions ...`: deploy, list, show, diff, migrate, schema, validate."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from app import definition_service, permissions
from app.migration import MigrationPlan
from cli.arguments import UsageError, add_key_values, process_ref
from cli.flags import stranded_flag, with_flag
from cli.output import action_json, deployment_json, emit, print_table
from client.api import DealflowClient, DealflowError, Refused
from definitions.loader import Checked, DefinitionError, check_file
from definitions.model import json_schema

EXIT_REFUSED = 1


def _warn(checked: Checked) -> list[str]:
    """Print a definition's warnings (to stderr: the answer stays on stdout) and return them."""
    for w in checked.warnings:
        print(f"warning: {w}", file=sys.stderr)
    return [str(w) for w in checked.warnings]


async def cmd_deploy(args: argparse.Namespace, c: DealflowClient) -> None:
    if args.dry_run:
        await _dry_run(args, c)
        return
    results = []
    for path in args.files:
        await permissions.require(c, args.actor, "deploy", str(path))  # before the file is read, as an upload's
        checked = definition_service.check(path)
        warnings = _warn(checked)
        results.append((await c.deploy_pinned(checked.pinned, deployed_by=args.actor, source=str(path)), warnings))
    if args.json:
        emit([deployment_json(d) | {"warnings": w} for d, w in results])
        return
    for d, _ in results:
        verb = "deployed" if d.created else "already deployed (no change)"
        print(
            f"{d.name}@{d.version} {verb}: {d.stages} stages, by {d.deployed_by} at {d.deployed_at:%Y-%m-%d %H:%M:%S}"
        )


async def _dry_run(args: argparse.Namespace, c: DealflowClient) -> None:
    """Validate and compare with what is deployed; write nothing."""
    previews = []
    for path in args.files:
        checked = definition_service.check(path)
        previews.append(await definition_service.preview(c, checked.pinned, str(path), _warn(checked)))
    if args.json:
        emit([p.model_dump(mode="json", exclude={"deployed_by"}) for p in previews])
        return
    for p in previews:
        ref = f"{p.name}@{p.version}"
        if p.already_deployed:
            print(f"{ref}: already deployed by {p.deployed_by}; deploying it again changes nothing")
        elif p.latest is None:
            print(f"{ref}: valid; would be the first version of {p.name}")
        else:
            print(f"{ref}: valid; would follow {p.name}@{p.latest} with {len(p.changes)} change(s):")
            for ch in p.changes:
                print(f"  {ch.text}")


async def cmd_list(args: argparse.Namespace, c: DealflowClient) -> None:
    rows = await c.definitions()
    if args.process:
        rows = [d for d in rows if d.name == args.process]
    if args.json:
        emit([deployment_json(d) for d in rows])
        return
    latest = {d.name: d.version for d in rows}  # rows come oldest first
    print_table(
        ["process", "version", "stages", "deployed by", "deployed at", ""],
        [
            [
                d.name,
                d.version,
                d.stages,
                d.deployed_by,
                f"{d.deployed_at:%Y-%m-%d %H:%M:%S}",
                "latest" if latest[d.name] == d.version else "",
            ]
            for d in rows
        ],
    )


async def cmd_show(args: argparse.Namespace, c: DealflowClient) -> None:
    name, version = args.ref
    view = await definition_service.show(c, name, version)
    if args.json:
        emit(view.model_dump(mode="json"))
        return
    d = view.definition
    print(f"{view.name}@{view.version}  {d.title or ''}".rstrip())
    if view.deployed_at:
        print(f"deployed by {view.deployed_by} at {view.deployed_at:%Y-%m-%d %H:%M:%S}")
    print(f"time zone {d.timezone}, business days {','.join(str(x) for x in d.business_days)}")
    if d.holidays is not None:
        h = d.holidays
        where = " ".join(x for x in (h.country, h.subdivision) if x) or "own dates"
        window = f" {h.first_year}-{h.last_year}" if h.first_year is not None else ""
        print(f"holidays {where}{window}: {len(h.dates)} days off, pinned at deploy")
    print_table(
        ["stage", "phase", "prob.", "exit criteria", "reminder", "cadence", "proposal"],
        [
            [
                s.id + (" (post-sale)" if s.post_sale else ""),
                s.phase,
                s.probability,
                ", ".join(f.fact for f in s.exit_criteria) or "-",
                f"{s.reminder.deadline} +{len(s.reminder.escalations)} escalations" if s.reminder else "-",
                s.cadence or "-",
                s.proposal_template or "-",
            ]
            for s in d.stages
        ],
    )
    for cadence in d.cadences:
        print(f"cadence {cadence.id}: {len(cadence.touches)} touches, stops on {', '.join(cadence.stop_on)}")
    for team in d.teams:
        rule = f"{team.assign.value}: {team.person}" if team.person else team.assign.value
        owns = [s.id for s in d.stages if (t := d.team_of(s.id)) is not None and t.id == team.id]
        print(f"team {team.id} ({rule}): {', '.join(team.members)}; owns {', '.join(owns) or 'no stage'}")
    if d.outcomes.lost:
        print(f"lost reasons: {', '.join(d.outcomes.lost.reasons)}; won from: {', '.join(d.won_from())}")
    for r in d.rebuy:
        print(f"rebuy {r.kind.value}: a {r.process} deal after {r.delay}")


async def cmd_diff(args: argparse.Namespace, c: DealflowClient) -> None:
    result = await definition_service.compare_versions(c, args.name, args.old, args.new)
    if args.json:
        emit({"from": result.from_ref, "to": result.to_ref, "changes": [ch.model_dump() for ch in result.changes]})
        return
    changes = result.changes
    print(f"{result.from_ref} -> {result.to_ref}: " + (f"{len(changes)} change(s)" if changes else "no changes"))
    for ch in changes:
        print(f"  {ch.text}")


def _plan_json(plan: MigrationPlan) -> dict[str, Any]:
    return {
        "process": plan.process,
        "from": plan.source.version,
        "to": plan.target.version,
        "stage_map": plan.stage_map,
        "moves": [{"deal_id": m.deal_id, "from_stage": m.from_stage, "to_stage": m.to_stage} for m in plan.moves],
        "stranded": [{"deal_id": s.deal_id, "stage": s.stage, "reason": s.reason} for s in plan.stranded],
    }


def check_migrate(args: argparse.Namespace) -> None:
    if args.from_version == args.to_version:
        raise UsageError(f"--from and --to are the same version, {args.from_version}")


async def cmd_migrate(args: argparse.Namespace, c: DealflowClient) -> None:
    plan = await c.plan_migration(args.name, args.from_version, args.to_version, args.map)
    if args.dry_run or not plan.ok:
        if args.json:
            emit(_plan_json(plan))
        else:
            _print_plan(plan)
        if not plan.ok:
            raise Refused(
                f"{len(plan.stranded)} deal(s) would be left on stages {plan.target.ref} does not have;"
                " nothing migrated",
                code="stranded_deals",
            )
        return
    outcomes = await c.apply_migration(plan, actor=args.actor)
    failed = [(deal_id, r) for deal_id, r in outcomes if isinstance(r, DealflowError)]
    if args.json:
        emit(
            {
                **_plan_json(plan),
                "results": [
                    {"deal_id": deal_id, **(action_json(r) if not isinstance(r, DealflowError) else {})}
                    | ({"refused": r.code, "message": r.message} if isinstance(r, DealflowError) else {})
                    for deal_id, r in outcomes
                ],
            }
        )
    else:
        done = len(outcomes) - len(failed)
        print(f"migrated {done} of {len(outcomes)} deal(s) from {plan.source.ref} to {plan.target.ref}")
        for deal_id, r in failed:
            assert isinstance(r, DealflowError)
            print(f"  {deal_id}: refused ({r.code}): {with_flag(r)}", file=sys.stderr)
    if failed:
        raise SystemExit(EXIT_REFUSED)


def _print_plan(plan: MigrationPlan) -> None:
    print(f"{plan.process}: {plan.source.version} -> {plan.target.version}")
    renamed = {k: v for k, v in plan.stage_map.items() if k != v}
    dropped = [s.id for s in plan.source.definition.stages if s.id not in plan.stage_map]
    if renamed:
        print("stage map: " + ", ".join(f"{k} -> {v}" for k, v in renamed.items()))
    if dropped:
        print("stages with no counterpart: " + ", ".join(dropped))
    if plan.moves:
        print_table(
            ["deal", "from stage", "to stage"],
            [[m.deal_id, m.from_stage or "-", m.to_stage or "-"] for m in plan.moves],
        )
    else:
        print("no running deals on this version")
    for s in plan.stranded:
        print(f"cannot migrate {s.deal_id}: {s.reason} ({stranded_flag(s.stage)})", file=sys.stderr)


def cmd_schema(args: argparse.Namespace) -> None:
    emit(json_schema())


def cmd_validate(args: argparse.Namespace) -> None:
    failed = False
    for path in args.files:
        try:
            checked = check_file(path)
            pinned = checked.pinned
            print(f"{path}: ok, {pinned.ref}, {len(pinned.definition.stages)} stages")
            _warn(checked)
        except DefinitionError as exc:
            failed = True
            print(str(exc), file=sys.stderr)
    if failed:
        raise SystemExit(EXIT_REFUSED)


def add_parser(top: Any) -> None:
    defs = top.add_parser("definitions", help="process definitions").add_subparsers(dest="sub", required=True)
    deploy = defs.add_parser("deploy", help="validate and deploy definition files (immutable versions)")
    deploy.add_argument("files", nargs="+", metavar="FILE")
    deploy.add_argument("--as", dest="actor", default="ops", metavar="WHO")
    deploy.add_argument(
        "--dry-run", action="store_true", help="validate and compare with what is deployed; write nothing"
    )
    deploy.add_argument("--json", action="store_true")
    deploy.set_defaults(client_run=cmd_deploy)

    dlist = defs.add_parser("list", help="deployed versions, oldest first")
    dlist.add_argument("--process", metavar="NAME")
    dlist.add_argument("--json", action="store_true")
    dlist.set_defaults(client_run=cmd_list)

    show = defs.add_parser("show", help="one deployed version (the latest unless NAME@VERSION)")
    show.add_argument("ref", type=process_ref, metavar="NAME[@VERSION]")
    show.add_argument("--json", action="store_true")
    show.set_defaults(client_run=cmd_show)

    d = defs.add_parser("diff", help="what changed between two deployed versions, in words")
    d.add_argument("name", metavar="NAME")
    d.add_argument("old", metavar="V1")
    d.add_argument("new", metavar="V2")
    d.add_argument("--json", action="store_true")
    d.set_defaults(client_run=cmd_diff)

    migrate = defs.add_parser("migrate", help="move running deals to another version")
    migrate.add_argument("name", metavar="NAME")
    migrate.add_argument("--from", dest="from_version", required=True, metavar="V1")
    migrate.add_argument("--to", dest="to_version", required=True, metavar="V2")
    add_key_values(migrate, "--map", metavar="OLD=NEW", help="where deals at stage OLD go")
    migrate.add_argument("--dry-run", action="store_true", help="list which deals would move and where")
    migrate.add_argument("--as", dest="actor", default="ops", metavar="WHO")
    migrate.add_argument("--json", action="store_true")
    migrate.set_defaults(client_run=cmd_migrate, check=check_migrate)

    defs.add_parser("schema", help="print the JSON Schema of definitions").set_defaults(run_sync=cmd_schema)
    validate = defs.add_parser("validate", help="validate files without deploying")
    validate.add_argument("files", nargs="+", metavar="FILE")
    validate.set_defaults(run_sync=cmd_validate)
