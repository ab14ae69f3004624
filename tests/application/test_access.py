"""Access control: identities and roles from configuration, enforced by the client and again by
the deal's update validators; refusals recorded; a read-only database role for auditors."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import pytest

from app import deal_service
from app.access import Identity, load_policy
from client.api import DealflowClient, Refused
from definitions.loader import PinnedDefinition
from domain.access import Claim, Forbidden, check
from domain.activity_io import AppendEvents, DealSnapshot
from domain.commands import CompleteStage
from domain.events import DealEvent, DealStarted, StageEntered
from domain.state import DealState, fold
from store import event_log
from store.migrations import migrate
from tests.support import TESTS, new_deal_id
from tests.support.cli import dealflow
from worker.settings import SettingsError
from workflows.deal import DealWorkflow

DEAL = DealState(deal_id="d1", owner="rita", team="east")
IDENTITIES = "rita=rep:east,bob=rep:east,mona=manager:east,max=manager:west,olga=ops,ada=auditor"


@pytest.mark.unit
@pytest.mark.parametrize(
    ("actor", "claim", "action", "refusal"),
    [
        ("rita", Claim(role="rep", team="east"), "act", None),
        ("bob", Claim(role="rep", team="east"), "act", "bob is a rep and deal d1 is owned by rita"),
        ("mona", Claim(role="manager", team="east"), "act", None),
        ("max", Claim(role="manager", team="west"), "act", "max manages team west; deal d1 belongs to team east"),
        ("olga", Claim(role="ops"), "act", "olga is ops: deal actions belong to the deal's rep and their manager"),
        ("olga", Claim(role="ops"), "migrate", None),
        ("mona", Claim(role="manager", team="east"), "migrate", "only ops migrate"),
        ("ada", Claim(role="auditor"), "act", "auditors read, they change nothing"),
        ("anyone", None, "act", None),
    ],
)
def test_what_the_deal_allows(actor: str, claim: Claim | None, action: str, refusal: str | None) -> None:
    if refusal is None:
        check(claim, actor, action, DEAL)  # type: ignore[arg-type]
        return
    with pytest.raises(Forbidden, match=refusal):
        check(claim, actor, action, DEAL)  # type: ignore[arg-type]


@pytest.mark.unit
def test_policy_from_a_file_and_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEALFLOW_HOME", str(tmp_path))
    monkeypatch.delenv("DEALFLOW_IDENTITIES", raising=False)
    assert load_policy() is None, "no configuration: access control is off"
    (tmp_path / "access.yaml").write_text("identities:\n  rita: {role: rep, team: east}\n  olga: {role: ops}\n")
    policy = load_policy()
    assert policy is not None and policy.source == str(tmp_path / "access.yaml")
    assert policy.identities == {"rita": Identity(role="rep", team="east"), "olga": Identity(role="ops")}
    monkeypatch.setenv("DEALFLOW_IDENTITIES", "rita=manager:west")
    policy = load_policy()
    assert policy is not None and policy.source == f"{tmp_path / 'access.yaml'} + DEALFLOW_IDENTITIES"
    assert policy.identities == {"rita": Identity(role="manager", team="west"), "olga": Identity(role="ops")}
    for bad, message in [
        ("rita=boss", "write NAME=ROLE[:TEAM] with ROLE one of rep, manager, ops, auditor"),
        ("mona=manager", "a manager needs a team"),
    ]:
        monkeypatch.setenv("DEALFLOW_IDENTITIES", bad)
        with pytest.raises(SettingsError) as err:
            load_policy()
        assert message in str(err.value)
    monkeypatch.delenv("DEALFLOW_IDENTITIES")
    (tmp_path / "access.yaml").write_text("identities:\n  rita: {role: admin}\n")
    with pytest.raises(SettingsError, match=r"access.yaml: identities.rita.role"):
        load_policy()
    monkeypatch.setenv("DEALFLOW_ACCESS_FILE", str(tmp_path / "missing.yaml"))
    with pytest.raises(SettingsError, match=r"missing\.yaml: cannot read it"):
        load_policy()


async def test_roles_through_the_cli(cli_env: dict[str, str], deployed: dict[str, PinnedDefinition]) -> None:
    env = {**cli_env, "DEALFLOW_IDENTITIES": IDENTITIES}
    deal = f"acl-{uuid.uuid4().hex[:8]}"

    async def run(*args: str) -> tuple[int, str]:
        result = await dealflow(env, *args)
        return result.code, result.out + result.err

    code, _ = await run("deal", "start", "--process", "three-phase", "--deal-id", deal, "--owner", "rita")
    assert code == 0
    code, text = await run(
        "deal", "start", "--process", "three-phase", "--deal-id", deal + "x", "--owner", "bob", "--as", "rita"
    )
    assert code == 1 and "a rep starts deals they own" in text
    before = json.loads((await dealflow(env, "deal", "events", deal, "--json")).out)

    code, text = await run("deal", "complete", deal, "--stage", "first-contact", "--as", "bob")
    assert code == 1 and f"refused (forbidden): bob is a rep and deal {deal} is owned by rita" in text
    code, text = await run("deal", "complete", deal, "--stage", "first-contact", "--as", "max")
    assert code == 1 and "max manages team west" in text
    code, text = await run("deal", "complete", deal, "--stage", "first-contact", "--as", "ada")
    assert code == 1 and "ada is auditor: may read, not act" in text
    code, text = await run("deal", "complete", deal, "--stage", "first-contact", "--as", "zed")
    assert code == 1 and "'zed' is not a known identity (DEALFLOW_IDENTITIES)" in text
    assert json.loads((await dealflow(env, "deal", "events", deal, "--json")).out) == before, "refusals change nothing"

    code, text = await run(
        "deal", "complete", deal, "--stage", "first-contact", "--as", "mona", "--fact", "buying_process_started=yes"
    )
    assert code == 0, text
    code, text = await run("deal", "status", deal, "--json")
    assert code == 0 and json.loads(text)["team"] == "east"

    process = TESTS / "processes" / "fem-trinn.yaml"
    code, text = await run("definitions", "deploy", str(process), "--as", "rita")
    assert code == 1 and "rita is rep: may act, read, start, not deploy" in text
    code, text = await run("definitions", "deploy", str(process), "--as", "olga")
    assert code == 0, text

    refusals = json.loads((await dealflow(env, "audit", "access", "--json")).out)
    mine = [(r["actor"], r["role"], r["action"], r["target"]) for r in refusals if r["target"] in {deal, deal + "x"}]
    assert mine == [  # newest first; the role check refuses in the client, the deal's own rules in its validator
        ("zed", None, "act", deal),
        ("ada", "auditor", "act", deal),
        ("max", "manager", "CompleteStage", deal),
        ("bob", "rep", "CompleteStage", deal),
        ("rita", "rep", "start", deal + "x"),
    ]


async def test_the_deal_enforces_the_claim_whatever_the_client_checked(
    client: DealflowClient, deployed: dict[str, PinnedDefinition]
) -> None:
    """A client without access configuration (or one that skips its checks) still cannot act
    for a rep on another rep's deal: the validator refuses, nothing enters history."""
    deal = f"acl-wf-{uuid.uuid4().hex[:8]}"
    await client.start_deal("three-phase", deal, "rita")
    before = await client.events(deal)
    cmd = CompleteStage(
        request_id=f"r-{uuid.uuid4().hex[:6]}",
        actor="bob",
        stage="first-contact",
        claim=Claim(role="rep", team="east"),
    )
    with pytest.raises(Refused) as refused:
        await deal_service.send(client, deal, DealWorkflow.complete_stage, cmd)
    assert refused.value.code == "forbidden"
    assert await client.events(deal) == before


async def test_auditors_read_through_a_role_that_cannot_write(pool: asyncpg.Pool) -> None:
    await migrate(pool)
    deal = new_deal_id("acl-audit")
    at = datetime(2026, 1, 5, 9, tzinfo=UTC)
    events: list[DealEvent] = [
        DealStarted(seq=1, at=at, actor="a", deal_id=deal, process="p", version="v", content_hash="h", owner="o"),
        StageEntered(seq=2, at=at, actor="a", stage="s2", via="next"),
        StageEntered(seq=3, at=at, actor="a", stage="s3", via="next"),
    ]
    assert (
        await event_log.append(pool, AppendEvents(deal_id=deal, events=events, snapshot=DealSnapshot.of(fold(events))))
        == 3
    )
    name = f"auditor_{uuid.uuid4().hex[:6]}"
    await pool.execute(f"CREATE ROLE {name} LOGIN IN ROLE dealflow_auditor")
    async with pool.acquire() as conn:
        try:
            await conn.execute(f"SET ROLE {name}")
            assert await conn.fetchval("SELECT count(*) FROM deal_events WHERE deal_id = $1", deal) == 3
            row = await conn.fetchrow("SELECT last_seq, stage FROM deals WHERE deal_id = $1", deal)
            assert row is not None and (row["last_seq"], row["stage"]) == (3, "s3")
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await conn.execute("DELETE FROM deal_events WHERE deal_id = 'nobody'")
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await conn.execute("INSERT INTO access_refusals (actor, action, reason) VALUES ('ada', 'x', 'y')")
        finally:
            await conn.execute("RESET ROLE")
    await pool.execute(f"DROP ROLE {name}")
