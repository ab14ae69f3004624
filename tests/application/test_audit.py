"""Audit: replay, timeline, as-of, verify and export, against the dev server and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import os
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import pytest

from client.api import DealflowClient
from store import event_log
from tests.support import SEVEN_FACTS, logged, new_deal_id
from tests.support.cli import dealflow
from worker.devserver import temporal_binary
from worker.settings import Settings

pytestmark = pytest.mark.usefixtures("deployed")


async def _walked_deal(client: DealflowClient, pool: asyncpg.Pool, prefix: str = "aud") -> str:
    """A deal with requests, a skip, a move back and a loss: the log ends with the deal."""
    deal = new_deal_id(prefix)
    await client.start_deal("seven-stage", deal, "alice", value=900, fields={"customer": "Acme", "title": "CRM"})
    await client.complete_stage(deal, "prospecting", actor="alice", facts=SEVEN_FACTS["prospecting"], request_id="r-1")
    await client.move(deal, "presentation", actor="bob", reason="warm intro", request_id="r-2")
    await client.move(deal, "preparation", actor="alice", reason="new stakeholder", request_id="r-3")
    await client.lose(deal, "no-budget", actor="alice", note="frozen", request_id="r-4")
    events = await client.events(deal)
    await logged(pool, deal, len(events))
    return deal


async def test_verify_replay_and_timeline_of_a_clean_deal(
    client: DealflowClient, pool: asyncpg.Pool, cli_env: dict[str, str]
) -> None:
    deal = await _walked_deal(client, pool)
    verified = await dealflow(cli_env, "audit", "verify", deal)
    assert verified.code == 0, verified.out + verified.err
    assert f"ok       deal {deal}" in verified.out
    replayed = await dealflow(cli_env, "audit", "replay", deal)
    assert replayed.code == 0, replayed.err
    assert "0 failed" in replayed.out
    timeline = (await dealflow(cli_env, "audit", "timeline", deal, "--json")).json()
    requests = [e for e in timeline if e["kind"] == "request"]
    assert [(r["what"], r["actor"], r["request_id"]) for r in requests] == [
        ("complete_stage", "alice", "r-1"),
        ("move", "bob", "r-2"),
        ("move", "alice", "r-3"),
        ("lose", "alice", "r-4"),
    ]
    assert requests[1]["details"]["reason"] == "warm intro" and requests[1]["details"]["to"] == "presentation"
    recorded = [(e["seq"], e["kind"], e["what"], e["stage"]) for e in timeline if e["kind"] != "request"]
    assert recorded == [
        (1, "event", "DealStarted", None),
        (2, "event", "StageEntered", "prospecting"),
        (3, "event", "StageCompleted", "prospecting"),
        (4, "event", "StageEntered", "preparation"),
        (5, "event", "StageSkipped", "preparation"),  # r-2: preparation to presentation, past needs-assessment
        (6, "event", "StageEntered", "presentation"),
        (7, "proposal", "ProposalFailed", "presentation"),  # its facts were to come from the skipped stage
        (8, "event", "MovedBack", "presentation"),
        (9, "event", "StageEntered", "preparation"),
        (10, "outcome", "DealLost", "preparation"),
    ]
    outcome = [e for e in timeline if e["kind"] == "outcome"]
    assert [(o["what"], o["details"]["reason"]) for o in outcome] == [("DealLost", "no-budget")]
    times = [e["at"] for e in timeline]
    assert times == sorted(times)


async def test_as_of_any_instant(client: DealflowClient, pool: asyncpg.Pool, cli_env: dict[str, str]) -> None:
    deal = await _walked_deal(client, pool, "asof")
    events = await client.events(deal)
    skipped = next(e for e in events if e.type == "StageSkipped")
    at_skip = await dealflow(cli_env, "audit", "as-of", deal, "--at", skipped.at.isoformat(), "--json")
    assert at_skip.code == 0, at_skip.err
    assert at_skip.json()["stage"] == "presentation"  # the skip and the entry it caused share one instant
    before = await dealflow(cli_env, "audit", "as-of", deal, "--at", "2000-01-01T00:00:00+00:00")
    assert before.code == 1 and "had not started" in before.err
    after = (await dealflow(cli_env, "audit", "as-of", deal, "--at", "2100-01-01T00:00:00+00:00", "--json")).json()
    assert after["status"] == "lost" and after["last_seq"] == len(events)
    bad = await dealflow(cli_env, "audit", "as-of", deal, "--at", "yesterday")
    assert bad.code == 2 and "argument --at: 'yesterday': expected a date or time in ISO 8601" in bad.err


@pytest.mark.parametrize(
    ("tamper", "expected"),
    [
        (
            "UPDATE deal_events SET payload = jsonb_set(payload, '{reason}', '\"price\"')"
            " WHERE deal_id = $1 AND type = 'DealLost'",
            ["content does not match its hash (altered)", "DealLost differs from DealLost in Temporal's history"],
        ),
        (
            "DELETE FROM deal_events WHERE deal_id = $1 AND seq = 4",
            ["seq 4: missing from the log (deleted?)", "seq 5: does not follow the row before it"],
        ),
        (
            "INSERT INTO deal_events (deal_id, seq, type, occurred_at, actor, process, version, payload,"
            " prev_hash, hash) SELECT deal_id, 99, type, occurred_at, 'mallory', process, version,"
            " jsonb_set(payload, '{seq}', '99'), hash, hash FROM deal_events WHERE deal_id = $1 AND seq = 7",
            [
                "..98: missing from the log",
                "seq 99: content does not match its hash",
                "seq 99: in the log but not in Temporal's history (inserted?)",
            ],
        ),
    ],
    ids=["edited", "deleted", "inserted"],
)
async def test_verify_names_tampered_rows(
    client: DealflowClient, pool: asyncpg.Pool, cli_env: dict[str, str], tamper: str, expected: list[str]
) -> None:
    deal = await _walked_deal(client, pool, "tamper")
    async with pool.acquire() as conn:
        # as an attacker with the database's superuser would: past the append-only triggers
        await conn.execute("SET session_replication_role = replica")
        await conn.execute(tamper, deal)
        await conn.execute("RESET session_replication_role")
    run = await dealflow(cli_env, "audit", "verify", deal)
    assert run.code == 1, run.out
    assert "MISMATCH" in run.out and "do not verify" in run.err
    for text in expected:
        assert text in run.out, run.out


async def test_export_replays_and_verifies_offline(
    client: DealflowClient, pool: asyncpg.Pool, cli_env: dict[str, str], tmp_path: Path
) -> None:
    deal = await _walked_deal(client, pool, "exp")
    out = tmp_path / "bundle.json"
    exported = await dealflow(cli_env, "audit", "export", deal, "--out", str(out))
    assert exported.code == 0, exported.err
    bundle = json.loads(out.read_text())
    assert bundle["deal_id"] == deal and bundle["definition"]["definition"]["name"] == "seven-stage"
    assert len(bundle["event_log"]) == await event_log.count(pool, deal)
    offline = {
        **os.environ,
        "DEALFLOW_HOME": str(tmp_path),
        "DATABASE_URL": "postgresql://x@127.0.0.1:1/none",
        "TEMPORAL_ADDRESS": "127.0.0.1:1",
    }
    replayed = await dealflow(offline, "audit", "replay", "--from-json", str(out))
    assert replayed.code == 0 and "0 failed" in replayed.out, replayed.out + replayed.err
    verified = await dealflow(offline, "audit", "verify", "--from-json", str(out))
    assert verified.code == 0, verified.out
    timeline = await dealflow(offline, "audit", "timeline", deal, "--from-json", str(out), "--json")
    assert [(e["what"], e["request_id"]) for e in timeline.json() if e["kind"] == "request"] == [
        ("complete_stage", "r-1"),
        ("move", "r-2"),
        ("move", "r-3"),
        ("lose", "r-4"),
    ]
    bundle["event_log"][2]["payload"]["facts"] = {"need": "nothing"}
    out.write_text(json.dumps(bundle))
    forged = await dealflow(offline, "audit", "verify", "--from-json", str(out))
    assert forged.code == 1 and "seq 3: content does not match its hash" in forged.out


async def test_history_exported_by_the_temporal_cli_replays(
    client: DealflowClient, pool: asyncpg.Pool, settings: Settings, cli_env: dict[str, str], tmp_path: Path
) -> None:
    deal = await _walked_deal(client, pool, "cli")
    proc = await asyncio.create_subprocess_exec(
        temporal_binary(),
        "workflow",
        "show",
        "--workflow-id",
        f"deal-{deal}",
        "--address",
        settings.temporal_address,
        "--output",
        "json",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    path = tmp_path / f"deal-{deal}.json"
    path.write_bytes(out)
    replayed = await dealflow(cli_env, "audit", "replay", "--from-json", str(path))
    assert replayed.code == 0, replayed.out + replayed.err
    assert "replayed 1 histories (Deal): 1 clean, 0 failed" in replayed.out


async def test_replay_all_of_a_process(client: DealflowClient, pool: asyncpg.Pool, cli_env: dict[str, str]) -> None:
    since = datetime.now(UTC)  # --since leaves out the deals of earlier tests
    deal = await _walked_deal(client, pool, "all")
    run = await dealflow(
        cli_env, "audit", "replay", "--all", "--process", "seven-stage", "--since", since.isoformat(), "--json"
    )
    assert run.code == 0, run.err
    assert [(r["workflow_type"], r["workflow_id"], r["ok"]) for r in run.json()] == [("Deal", f"deal-{deal}", True)]


async def test_audit_usage_errors(cli_env: dict[str, str], tmp_path: Path) -> None:
    nothing = await dealflow(cli_env, "audit", "replay")
    assert nothing.code == 2 and "nothing to replay" in nothing.err
    junk = tmp_path / "junk.json"
    junk.write_text('{"hello": 1}')
    unreadable = await dealflow(cli_env, "audit", "replay", "--from-json", str(junk))
    assert unreadable.code == 1 and "neither a Temporal history" in unreadable.err
    unknown = await dealflow(cli_env, "audit", "timeline", "no-such-deal")
    assert unknown.code == 1 and "no history for deal 'no-such-deal'" in unknown.err
