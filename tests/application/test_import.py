"""`dealflow import` end to end, on the real servers: open deals start at the stage they reached
(a deal past its deadline is reminded at once, a stage with a cadence starts it), closed deals go
in as history that metrics, timelines and verify read, a bad row is named and left out, a second
run adds nothing, and a stopped run resumes."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from app import audit_service, import_service, metrics_service
from app.metrics_service import MetricsQuery
from client.api import DealflowClient
from definitions.loader import PinnedDefinition
from store import event_log, history_load
from tests.support import wait_for
from tests.support.cli import dealflow


def _csv(path: Path, tag: str) -> str:
    now = datetime.now(UTC).replace(microsecond=0)

    def ago(days: int) -> str:
        return (now - timedelta(days=days)).isoformat()

    rows = [
        "deal_id,stage,entered_at,owner,value,lost_reason,budget",
        f"o1-{tag},prospecting,{ago(40)},rita,1000,,",
        f"o1-{tag},preparation,{ago(30)},rita,1000,,",
        f"o2-{tag},prospecting,{ago(5)},bob,2000,,",
        f"o2-{tag},objection-handling,{ago(1)},bob,2000,,",
        f"c1-{tag},prospecting,{ago(90)},rita,500,,",
        f"c1-{tag},needs-assessment,{ago(80)},rita,500,,4000",
        f"c1-{tag},presentation,{ago(77)},rita,500,,",
        f"c1-{tag},objection-handling,{ago(74)},rita,500,,",
        f"c1-{tag},closing,{ago(70)},rita,500,,",
        f"c1-{tag},won,{ago(60)},rita,500,,",
        f"c2-{tag},prospecting,{ago(50)},bob,300,,",
        f"c2-{tag},lost,{ago(45)},bob,300,timing,",
        f"b1-{tag},prospecting,31/12/2025,bob,300,,",
    ]
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return str(path)


async def test_an_export_is_imported_once_and_its_deals_run_on(
    cli_env: dict[str, str], client: DealflowClient, deployed: dict[str, PinnedDefinition], tmp_path: Path
) -> None:
    tag = uuid.uuid4().hex[:8]
    export = _csv(tmp_path / "changes.csv", tag)
    args = ["import", "csv", export, "--process", "seven-stage"]

    dry = await dealflow(cli_env, *args, "--dry-run")
    assert dry.code == 1, dry.err
    assert "open deals that would start, per stage:" in dry.out
    assert "objection-handling" in dry.out and "preparation" in dry.out
    assert "closed deals that would go in as history: 1 won, 1 lost" in dry.out
    assert "changes.csv:14: entered_at: '31/12/2025' is not a date" in dry.err
    assert await event_log.last_seq(client.pool, f"csv-c1-{tag}") == 0, "a dry run writes nothing"

    real = await dealflow(cli_env, *args, "--json")
    assert real.code == 1, "one row could not be taken"
    report = real.json()
    assert (report["started"], report["recorded"]) == (2, 2)
    assert await event_log.last_seq(client.pool, f"csv-b1-{tag}") == 0, "the bad row's deal is not taken in part"

    # closed deals: history in the log, read by metrics, timelines and verify like any deal
    won = await client.events(f"csv-c1-{tag}")
    assert [e.type for e in won][:3] == ["DealStarted", "DealImported", "StageEntered"]
    assert won[-1].type == "DealWon" and won[0].at < datetime.now(UTC) - timedelta(days=89)
    [(_, m)] = await metrics_service.metrics(client, MetricsQuery(process="seven-stage", owner="rita"))
    assert m.deals.won >= 1
    verdict = await audit_service.verify_running(client, f"csv-c1-{tag}")
    assert verdict.ok, verdict.problems
    assert "changes.csv" in verdict.notes[0] and "row 6" in verdict.notes[0]
    timeline = await audit_service.deal_timeline(client, f"csv-c1-{tag}")
    assert timeline[1].what == "DealImported" and timeline[1].details["sha256"] == won[1].model_dump()["sha256"]

    # open deals: running at their stage; overdue ones reminded at once; a cadence stage starts it
    o1 = await client.status(f"csv-o1-{tag}")
    assert o1.state.stage == "preparation" and o1.running
    assert o1.state.stage_entered_at is not None and o1.state.stage_entered_at < datetime.now(UTC) - timedelta(days=29)

    async def breached() -> bool:
        return any(e.type == "SlaBreached" for e in await client.events(f"csv-o1-{tag}"))

    await wait_for(breached, timeout=30)
    assert await _outbox(client, tag) == 0, "by default an import sends nothing for the past"
    assert report["effects"] == "future" and report["messages"] == {"reminders": 0, "escalations": 0, "cadences": 0}
    assert not any(e.type == "CadenceStarted" for e in await client.events(f"csv-o2-{tag}"))
    moved = await client.complete_stage(
        f"csv-o1-{tag}", "preparation", actor="rita", facts={"buying_steps": "CFO signs"}
    )
    assert moved.stage == "needs-assessment", "an imported deal takes a rep's actions like any other"

    again = await dealflow(cli_env, *args, "--json")
    assert again.json()["already_imported"] == 4 and again.json()["started"] == 0 and again.json()["recorded"] == 0


async def _outbox(client: DealflowClient, tag: str) -> int:
    return int(await client.pool.fetchval("SELECT count(*) FROM outbox WHERE deal_id LIKE $1", f"csv-%-{tag}"))


async def test_an_import_that_chooses_all_effects_sends_what_its_dry_run_counts(
    cli_env: dict[str, str], client: DealflowClient, deployed: dict[str, PinnedDefinition], tmp_path: Path
) -> None:
    tag = uuid.uuid4().hex[:8]
    export = _csv(tmp_path / "changes.csv", tag)
    args = ["import", "csv", export, "--process", "seven-stage", "--effects", "all", "--json"]
    dry = (await dealflow(cli_env, *args, "--dry-run")).json()
    assert dry["messages"]["reminders"] >= 1 and dry["messages"]["cadences"] == 1, dry["messages"]
    before = await _outbox(client, tag)
    real = (await dealflow(cli_env, *args)).json()
    assert real["messages"] == dry["messages"]

    async def cadence() -> bool:
        return any(e.type == "CadenceStarted" for e in await client.events(f"csv-o2-{tag}"))

    async def notified() -> bool:
        n = await client.pool.fetchval(
            "SELECT count(*) FROM outbox WHERE deal_id LIKE $1 AND kind = 'notification'", f"csv-%-{tag}"
        )
        return bool(int(n) == dry["messages"]["reminders"] + dry["messages"]["escalations"])

    await wait_for(cadence, timeout=30)
    await wait_for(notified, timeout=30)
    assert before == 0 and await _outbox(client, tag) >= dry["messages"]["reminders"]


async def test_an_import_stopped_half_way_resumes_where_it_stopped(
    client: DealflowClient, deployed: dict[str, PinnedDefinition], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tag = uuid.uuid4().hex[:8]
    lines = ["deal_id,stage,entered_at,owner"]
    for n in range(5):
        lines += [
            f"d{n}-{tag},prospecting,2026-01-0{n + 1}T09:00:00Z,rita",
            f"d{n}-{tag},closing,2026-01-1{n + 1}T09:00:00Z,rita",
            f"d{n}-{tag},won,2026-02-01T09:00:00Z,rita",
        ]
    (tmp_path / "closed.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    plan, files = await import_service.read(
        client, "csv", [str(tmp_path / "closed.csv")], process="seven-stage", mapping_file=None
    )
    monkeypatch.setattr(import_service, "CLOSED_BATCH", 2)
    real_load, calls = history_load.load_rows, []

    async def dies_on_the_second_batch(conn: object, rows: object) -> int:
        calls.append(1)
        if len(calls) == 2:
            raise ConnectionResetError("the import was stopped")
        return await real_load(conn, rows)  # type: ignore[arg-type]

    monkeypatch.setattr(history_load, "load_rows", dies_on_the_second_batch)
    with pytest.raises(ConnectionResetError):
        await import_service.run(client, plan, files, actor="ops", dry_run=False)
    counted = [await event_log.last_seq(client.pool, f"csv-d{n}-{tag}") > 0 for n in range(5)]
    assert counted == [True, True, False, False, False], "the first batch is in, the stopped one left nothing"

    monkeypatch.setattr(history_load, "load_rows", real_load)
    resumed = await import_service.run(client, plan, files, actor="ops", dry_run=False)
    assert (resumed.already_imported, resumed.recorded) == (2, 3)
    assert all([await event_log.last_seq(client.pool, f"csv-d{n}-{tag}") == 7 for n in range(5)])
    failed, finished = (
        await client.pool.fetch(
            "SELECT status, error, finished_at FROM imports WHERE files = $1::jsonb ORDER BY started_at",
            json.dumps(files),
        )
    )[-2:]
    assert failed["status"] == "failed" and "ConnectionResetError" in failed["error"] and failed["finished_at"]
    assert finished["status"] == "finished"
    noop = await import_service.run(client, plan, files, actor="ops", dry_run=False)
    assert noop.import_id is not None and (noop.already_imported, noop.recorded) == (5, 0)
    status = await client.pool.fetchval("SELECT status FROM imports WHERE import_id = $1", noop.import_id)
    assert status == "finished", "a run that finds nothing to do is recorded too"
