"""`dealflow import` on the export files in tests/exports/, on the real servers: each bad row is
refused by file and line while the good deals go in, the dry run lists exactly what the real run
refuses, a rerun adds nothing and is recorded, and a bare-day close is made exact."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from client.api import DealflowClient
from definitions.loader import PinnedDefinition
from store import event_log
from tests.support import TESTS
from tests.support.cli import Run, dealflow

EXPORTS = TESTS / "exports"
SEVEN = ["--process", "seven-stage", "--json"]


async def _dry_then_real(env: dict[str, str], *args: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Both runs of one import; each refuses something, so exits 1, and neither crashes."""
    dry, real = await dealflow(env, *args, *SEVEN, "--dry-run"), await dealflow(env, *args, *SEVEN)
    for run in (dry, real):
        _refused_in_words(run)
    assert dry.json()["problems"] == real.json()["problems"], "the dry run lists what the real run refuses"
    return dry.json(), real.json()


def _refused_in_words(run: Run) -> None:
    assert run.code == 1, (run.out, run.err)
    assert "Traceback" not in run.err, run.err


async def _status(client: DealflowClient, import_id: str) -> str:
    return str(await client.pool.fetchval("SELECT status FROM imports WHERE import_id = $1", import_id))


async def test_duplicate_closed_ids_are_refused_naming_both_lines_and_the_rest_goes_in(
    cli_env: dict[str, str], client: DealflowClient, deployed: dict[str, PinnedDefinition]
) -> None:
    args = ["import", "hubspot", str(EXPORTS / "hubspot-closed-dups.csv"), "--pipeline", "Sales"]
    args += ["--map", str(EXPORTS / "hubspot-map.yaml")]
    dry, real = await _dry_then_real(cli_env, *args)
    assert real["problems"] == [
        "hubspot-closed-dups.csv:4: deal 9102: Record ID '9102' is also on line 3: one row per deal;"
        " neither row is imported",
        "hubspot-closed-dups.csv:3: deal 9102: Record ID '9102' is on more than one row; neither row is imported",
    ], real["problems"]
    assert dry["closed"] == real["closed"] == {"lost": 1} and dry["starts_per_stage"] == {"prospecting": 1}
    assert (real["started"], real["recorded"]) == (1, 1)
    assert await _status(client, real["import_id"]) == "finished"

    again = await dealflow(cli_env, *args, *SEVEN)
    _refused_in_words(again)
    rerun = again.json()
    assert (rerun["already_imported"], rerun["started"], rerun["recorded"]) == (2, 0, 0), "a rerun adds nothing"
    assert (
        rerun["import_id"] not in (None, real["import_id"]) and await _status(client, rerun["import_id"]) == "finished"
    )
    counts = await client.pool.fetchval(
        "SELECT counts->>'already_imported' FROM imports WHERE import_id = $1", rerun["import_id"]
    )
    assert counts == "2", "the rerun is recorded with what it found"


async def test_rows_cut_short_or_cut_in_a_quote_are_refused_by_line_not_dropped(
    cli_env: dict[str, str], client: DealflowClient, deployed: dict[str, PinnedDefinition]
) -> None:
    args = ["import", "hubspot", str(EXPORTS / "hubspot-bad.csv"), "--pipeline", "Sales"]
    args += ["--map", str(EXPORTS / "hubspot-map.yaml")]
    dry, real = await _dry_then_real(cli_env, *args)
    said = real["problems"]
    assert any(p.startswith("hubspot-bad.csv:5: column 8 (Close Date): missing") for p in said), said
    assert any(p.startswith("hubspot-bad.csv:6:") and "quoted cell left open" in p for p in said), said
    assert dry["starts_per_stage"] == {"prospecting": 1}
    assert real["rows"] == 5 and real["started"] == 1, "of five rows, one deal goes in and each other row is named"
    assert len(said) == 4, said  # two duplicated lines, the cut row, the open quote


async def test_wins_from_a_stage_the_process_does_not_allow_are_refused(
    cli_env: dict[str, str], client: DealflowClient, deployed: dict[str, PinnedDefinition]
) -> None:
    generic = ["import", "csv", str(EXPORTS / "generic-changes.csv")]
    dry, real = await _dry_then_real(cli_env, *generic)
    said = real["problems"]
    assert len(said) == 3, said
    assert said[0].startswith("generic-changes.csv:16: column 4 (owner): missing"), said
    assert said[1].startswith("generic-changes.csv:10: deal gx-early: won from stage 'prospecting'"), said
    assert "only from 'closing'" in said[1]
    assert said[2].startswith("generic-changes.csv:12: deal gx-skips: moves from 'needs-assessment' to 'closing'")
    assert "does not allow skipping ahead" in said[2], "a skip no rep could make is refused, not retold"
    assert real["closed"] == {"won": 1, "lost": 1} and (real["started"], real["recorded"]) == (1, 2)
    assert await event_log.last_seq(client.pool, "csv-gx-early") == 0, "the early win left nothing"
    assert await event_log.last_seq(client.pool, "csv-gx-skips") == 0, "nor did the skip"
    won = await client.events("csv-gx-won")
    assert won[-1].type == "DealWon" and won[-1].at == datetime(2026, 2, 1, 9, tzinfo=UTC)

    salesforce = ["import", "salesforce", "--opportunities", str(EXPORTS / "sf-opps.csv")]
    salesforce += ["--history", str(EXPORTS / "sf-history.csv"), "--map", str(EXPORTS / "sf-map.yaml")]
    dry, real = await _dry_then_real(cli_env, *salesforce)
    assert (
        real["problems"][0] == "sf-history.csv:5: a history row of opportunity '006Z', which sf-opps.csv does not hold"
    )
    assert real["problems"][1].startswith("sf-opps.csv:3: deal 006B: won from stage 'prospecting'"), real["problems"]
    assert dry["starts_per_stage"] == {"closing": 1} and dry["closed"] == {}
    assert (real["started"], real["recorded"]) == (1, 0)
    assert (await client.logged_state("salesforce-006A")).owner == "rita", "OwnerName read through columns:"


async def test_hubspot_date_exited_makes_a_bare_day_close_exact(
    cli_env: dict[str, str], client: DealflowClient, deployed: dict[str, PinnedDefinition]
) -> None:
    args = ["import", "hubspot", str(EXPORTS / "hubspot-date-exited.csv"), "--pipeline", "Sales"]
    run = await dealflow(cli_env, *args, "--map", str(EXPORTS / "hubspot-map.yaml"), *SEVEN)
    assert run.code == 0, (run.out, run.err)
    assert run.json()["recorded"] == 1
    [deal_id] = [
        r["deal_id"] for r in await client.pool.fetch("SELECT deal_id FROM imported_deals WHERE crm_id = '9201'")
    ]
    events = await client.events(deal_id)
    entered = [e.at for e in events if e.type == "StageEntered"]
    assert entered[-1] == datetime(2026, 1, 20, 11, tzinfo=UTC), "it entered closing that day, after midnight"
    assert events[-1].type == "DealLost"
    assert events[-1].at == datetime(2026, 1, 20, 16, 45, tzinfo=UTC), "closed when it left Contract, not at midnight"
