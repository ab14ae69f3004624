"""Definition lifecycle: deploy (and its dry run), list, show, diff, and migrating running deals.

Two versions of a process the project does not ship (tests/processes/versions) are deployed
under a fresh name, diffed, and a set of deals in four different stages is migrated from the
first to the second and driven to the end on the new stages.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import asyncpg
import pytest

from client.api import DealflowClient, Refused
from definitions.loader import load_file
from domain.events import CadenceStarted, MigratedToVersion
from store.metrics import Filters, compute
from tests.support import wait_for
from tests.support.cli import dealflow


async def test_deploy_dry_run_list_show_and_diff(cli_env: dict[str, str], orders: tuple[Path, Path, str]) -> None:
    v1_path, v2_path, name = orders
    v1, v2 = load_file(v1_path), load_file(v2_path)

    dry = await dealflow(cli_env, "definitions", "deploy", "--dry-run", str(v1_path))
    assert dry.code == 0, dry.err
    assert f"{name}@{v1.version}: valid; would be the first version" in dry.out
    listed = await dealflow(cli_env, "definitions", "list", "--process", name, "--json")
    assert json.loads(listed.out) == [], "a dry run deploys nothing"

    first = await dealflow(cli_env, "definitions", "deploy", "--as", "olga", str(v1_path))
    assert first.code == 0 and "deployed: 4 stages, by olga" in first.out, first.out + first.err
    again = await dealflow(cli_env, "definitions", "deploy", "--as", "olga", str(v1_path))
    assert "already deployed (no change)" in again.out

    dry2 = await dealflow(cli_env, "definitions", "deploy", "--dry-run", "--json", str(v2_path))
    report = json.loads(dry2.out)[0]
    assert report["latest"] == v1.version and not report["already_deployed"]
    assert "stage discovery renamed to qualify-need" in [c["text"] for c in report["changes"]]
    await dealflow(cli_env, "definitions", "deploy", "--as", "olga", str(v2_path))

    listed = json.loads((await dealflow(cli_env, "definitions", "list", "--process", name, "--json")).out)
    assert [(d["version"], d["deployed_by"]) for d in listed] == [(v1.version, "olga"), (v2.version, "olga")]
    table = (await dealflow(cli_env, "definitions", "list", "--process", name)).out
    assert v2.version in table.splitlines()[-1] and "latest" in table.splitlines()[-1]

    show = await dealflow(cli_env, "definitions", "show", name)
    assert show.code == 0 and f"{name}@{v2.version}" in show.out and "cadence nudge: 5 touches" in show.out
    shown = json.loads((await dealflow(cli_env, "definitions", "show", f"{name}@{v1.version}", "--json")).out)
    assert shown["version"] == v1.version and shown["deployed_by"] == "olga"
    assert [s["id"] for s in shown["definition"]["stages"]] == ["lead", "discovery", "demo", "negotiate"]

    diff = await dealflow(cli_env, "definitions", "diff", name, v1.version, v2.version)
    assert diff.code == 0, diff.err
    for line in (
        "stage discovery renamed to qualify-need",
        "stage demo (Demo) removed",
        "stage solution (Solution design and demo) added, after qualify-need",
        "stage contract (Contract) added, after negotiate",
        "stage discovery (now qualify-need): new exit criterion budget (number)",
        "stage negotiate: now has a reminder",
        "stage negotiate: cadence none -> nudge",
        "cadence nudge added (5 touches)",
        "lost reasons +no-decision",
    ):
        assert line in diff.out
    same = await dealflow(cli_env, "definitions", "diff", name, v1.version, v1.version)
    assert "no changes" in same.out
    missing = await dealflow(cli_env, "definitions", "show", f"{name}@000000000000")
    assert missing.code == 1 and "no deployed version" in missing.err


async def _deal_at(client: DealflowClient, name: str, version: str, stage: str) -> str:
    deal_id = f"mig-{uuid.uuid4().hex[:8]}"
    await client.start_deal(name, deal_id, "rita", version=version, fields={"customer": "Acme"})
    path = ["lead", "discovery", "demo", "negotiate"]
    for s in path[: path.index(stage)]:
        facts = {"need": "faster invoicing"} if s == "discovery" else {}
        await client.complete_stage(deal_id, s, actor="rita", facts=facts)
    return deal_id


async def test_migrating_running_deals_to_a_new_version(
    client: DealflowClient, pool: asyncpg.Pool, cli_env: dict[str, str], orders: tuple[Path, Path, str]
) -> None:
    v1_path, v2_path, name = orders
    for path in (v1_path, v2_path):
        assert (await dealflow(cli_env, "definitions", "deploy", str(path))).code == 0
    v1, v2 = load_file(v1_path), load_file(v2_path)
    deals = {
        stage: await _deal_at(client, name, v1.version, stage) for stage in ("lead", "discovery", "demo", "negotiate")
    }

    async def projected() -> bool:
        rows = await pool.fetch("SELECT stage FROM deals WHERE process = $1 AND version = $2", name, v1.version)
        return sorted(r["stage"] for r in rows) == sorted(deals)

    await wait_for(projected)
    migrate = ["definitions", "migrate", name, "--from", v1.version, "--to", v2.version]

    # demo has no counterpart in v2: the plan is refused whole, and says how to fix it
    stranded = await dealflow(cli_env, *migrate, "--dry-run")
    assert stranded.code == 1
    assert (
        f"cannot migrate {deals['demo']}: stage demo is not in {name}@{v2.version}; map demo to one of its stages"
        " (--map demo=STAGE)" in stranded.err
    )
    refused = await dealflow(cli_env, *migrate)
    assert refused.code == 1 and "nothing migrated" in refused.err
    bad_map = await dealflow(cli_env, *migrate, "--map", "demoo=solution")
    assert bad_map.code == 1 and f"demoo is not a stage of {name}@{v1.version}" in bad_map.err
    for deal_id in deals.values():
        assert (await client.status(deal_id)).process_ref == f"{name}@{v1.version}", "a refused plan changes nothing"

    plan = await dealflow(cli_env, *migrate, "--map", "demo=solution", "--dry-run", "--json")
    assert plan.code == 0, plan.err
    moves = {m["deal_id"]: (m["from_stage"], m["to_stage"]) for m in json.loads(plan.out)["moves"]}
    assert moves == {
        deals["lead"]: ("lead", "lead"),
        deals["discovery"]: ("discovery", "qualify-need"),
        deals["demo"]: ("demo", "solution"),
        deals["negotiate"]: ("negotiate", "negotiate"),
    }

    applied = await dealflow(cli_env, *migrate, "--map", "demo=solution", "--as", "olga")
    assert applied.code == 0 and "migrated 4 of 4 deal(s)" in applied.out, applied.out + applied.err
    rerun = await dealflow(cli_env, *migrate, "--map", "demo=solution", "--as", "olga")
    assert "no running deals on this version" in (await dealflow(cli_env, *migrate, "--dry-run")).out
    assert rerun.code == 0 and "migrated 0 of 0" in rerun.out

    for stage, deal_id in deals.items():
        status = await client.status(deal_id)
        assert status.process_ref == f"{name}@{v2.version}"
        assert status.state.stage == moves[deal_id][1]
        migrated = [e for e in await client.events(deal_id) if isinstance(e, MigratedToVersion)]
        assert len(migrated) == 1 and migrated[0].actor == "olga"
        assert (migrated[0].from_version, migrated[0].to_version, migrated[0].from_stage) == (
            v1.version,
            v2.version,
            stage,
        )
    # facts recorded on discovery now belong to qualify-need
    assert (await client.status(deals["demo"])).state.facts == {
        "lead": {},
        "qualify-need": {"need": "faster invoicing"},
    }
    assert [f.fact for f in (await client.status(deals["discovery"])).missing_facts] == ["need", "budget"]
    # negotiate has a cadence in v2: the migrated deal started it (right after the migration,
    # which went to the log first; the cadence's start follows within the flush window)
    migrated_at = max(e.seq for e in await client.events(deals["negotiate"]) if isinstance(e, MigratedToVersion))
    events = await client.events(deals["negotiate"], min_seq=migrated_at + 1)
    assert [e.cadence for e in events if isinstance(e, CadenceStarted)] == ["nudge"]

    # every deal finishes on the new version's stages
    for deal_id in deals.values():
        at = (await client.status(deal_id)).state.stage  # the migration is in the log: it was urgent
        while at != "contract":
            needs = {"need": "invoicing", "budget": 50000} if at == "qualify-need" else {}
            at = (await client.complete_stage(deal_id, str(at), actor="rita", facts=needs)).stage
        await client.win(deal_id, actor="rita")

    async def all_won() -> bool:
        rows = await pool.fetch("SELECT status, version FROM deals WHERE process = $1", name)
        return [(r["status"], r["version"]) for r in rows] == [("won", v2.version)] * 4

    await wait_for(all_won)
    m = await compute(pool, v2.definition, Filters(process=name, version=v2.version))
    assert (m.deals.deals, m.deals.won, m.deals.win_rate) == (4, 4, 1.0)
    entered = {s.stage: s.entered for s in m.stages}
    assert entered == {"lead": 4, "qualify-need": 4, "solution": 4, "negotiate": 4, "contract": 4}
    converted = {s.stage: s.converted_any_later for s in m.stages}
    assert converted == {"lead": 4, "qualify-need": 4, "solution": 4, "negotiate": 4, "contract": 4}


async def test_a_stale_migration_is_refused_by_the_deal(
    client: DealflowClient,
    orders: tuple[Path, Path, str],
    cli_env: dict[str, str],
) -> None:
    """The deal's own validator checks the plan again: a deal no longer on --from is refused,
    and the refusal leaves its history as it was."""
    v1_path, v2_path, name = orders
    for path in (v1_path, v2_path):
        await dealflow(cli_env, "definitions", "deploy", str(path))
    v1 = load_file(v1_path)
    deal_id = await _deal_at(client, name, v1.version, "demo")
    plan = await client.plan_migration(name, load_file(v2_path).version, v1.version)  # backwards: v2 -> v1
    before = await client.events(deal_id)
    with pytest.raises(Refused) as refused:
        await client.migrate_deal(deal_id, plan, actor="olga")
    assert refused.value.code == "version_mismatch"
    plan = await client.plan_migration(name, v1.version, load_file(v2_path).version)
    with pytest.raises(Refused) as stranded:
        await client.migrate_deal(deal_id, plan, actor="olga")  # demo has no counterpart and no --map
    assert stranded.value.code == "stage_missing" and "map demo to one of its stages" in stranded.value.message
    assert stranded.value.input_at_fault == {"stage": "demo", "input": "stage_map"}, "the CLI and the web name it"
    assert await client.events(deal_id) == before
