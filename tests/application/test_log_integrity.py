"""The log never lacks a deal while verify says ok.

Values the log cannot hold are refused before they reach Temporal (by the API, the CLI, the
client and the workflow's own validators); an append the log refuses is recorded, shown and
alerted instead of retried in silence; and verify names every event the log lacks, of every deal
Temporal or the log knows, imported ones included.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowUpdateFailedError

from app import audit_service
from client.api import DealflowClient, LogLagging, NotFound, Refused
from definitions.loader import PinnedDefinition
from domain.commands import workflow_id
from store import event_log, log_failures, registry
from store.event_log import GENESIS, canonical_document, chained
from tests.support import new_deal_id, wait_for
from tests.support.cli import dealflow
from tests.support.web import app_over, http
from worker.health import log_appends
from worker.telemetry import DealflowMetrics

pytestmark = pytest.mark.usefixtures("deployed")


JSON = {"content-type": "application/json"}


def _json(body: object) -> bytes:
    """A JSON body as any client may send it: escapes for lone surrogates, and Infinity."""
    return json.dumps(body).encode()


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        ({"fields": {"customer": "Acme\u0000Evil"}}, "fields.customer", "NUL character"),
        ({"fields": {"cust\u0000omer": "Acme"}}, "fields.cust\u0000omer.[key]", "NUL character"),
        ({"fields": {"customer": "\ud800"}}, "fields.customer", "unable to parse raw data as a unicode string"),
        ({"fields": {"customer": "x" * 9000}}, "fields.customer", "at most 2000 characters"),
        ({"owner": "rita\u0000"}, "owner", "NUL character"),
        ({"value": 1e400}, "value", "finite number"),
        ({"fields": {f"f{i}": "v" for i in range(65)}}, "fields", "at most 64 items"),
    ],
    ids=["nul-value", "nul-name", "surrogate", "9k-customer", "nul-owner", "infinite-value", "too-many-fields"],
)
async def test_a_start_the_log_could_not_hold_is_refused_and_starts_nothing(
    client: DealflowClient, body: dict[str, object], field: str, words: str
) -> None:
    deal = new_deal_id("unstorable")
    async with http(app_over(client)) as api:
        answer = await api.post(
            "/api/v1/deals", headers=JSON, content=_json({"process": "seven-stage", "deal_id": deal, **body})
        )
    assert answer.status_code == 422, answer.text
    error = answer.json()
    assert error["code"] == "invalid_request" and words in error["message"], error
    assert any(".".join(str(p) for p in d["loc"][1:]) == field for d in error["details"]), error["details"]
    with pytest.raises(NotFound):
        await client.status(deal)
    described = client.temporal.list_workflows(f'WorkflowId = "{workflow_id(deal)}"')
    assert [w async for w in described] == []


async def test_the_longest_customer_allowed_is_held_by_the_log_and_its_indexes(
    client: DealflowClient, pool: asyncpg.Pool
) -> None:
    """2,000 four-byte characters: 8 kB, past what a b-tree entry holds."""
    deal = new_deal_id("long-customer")
    customer = "\U0001d11e" * 2000
    await client.start_deal("seven-stage", deal, "rita", fields={"customer": customer})
    assert (await client.status(deal)).state.fields["customer"] == customer
    assert await pool.fetchval("SELECT count(*) FROM deals WHERE customer = $1", customer) == 1
    assert (await audit_service.verify_running(client, deal)).ok


async def test_facts_and_notes_the_log_could_not_hold_are_refused_at_every_door(
    client: DealflowClient, cli_env: dict[str, str]
) -> None:
    deal = new_deal_id("unstorable-facts")
    await client.start_deal("seven-stage", deal, "rita")
    before = await client.events(deal)

    # the Python client, before anything is sent
    with pytest.raises(Refused) as refused:
        await client.complete_stage(deal, "prospecting", actor="rita", facts={"need": "CRM\x00", "can_afford": True})
    assert refused.value.code == "invalid_request" and "facts.need" in refused.value.message
    with pytest.raises(Refused) as refused:
        await client.lose(deal, "timing", actor="rita", note="n" * 4001)
    assert "note" in refused.value.message and "at most 4000 characters" in refused.value.message

    # the API
    async with http(app_over(client)) as api:
        answer = await api.post(
            f"/api/v1/deals/{deal}/complete",
            headers=JSON,
            content=_json({"stage": "prospecting", "facts": {"need": "a\ud800"}}),
        )
        assert answer.status_code == 422 and "facts.need" in answer.json()["message"], answer.text
        nan = _json({"stage": "prospecting", "facts": {"need": float("nan")}})
        answer = await api.post(f"/api/v1/deals/{deal}/complete", headers=JSON, content=nan)
        assert answer.status_code == 422 and answer.json()["code"] == "invalid_request", answer.text

    # the CLI
    run = await dealflow(cli_env, "deal", "reply", deal, "--as", "rita", "--note", "r" * 4001)
    assert run.code == 1 and "note" in run.err and "at most 4000 characters" in run.err, run.err

    # the workflow's own validator, for a client that sends the update straight to Temporal
    handle = client.temporal.get_workflow_handle(workflow_id(deal))
    with pytest.raises(WorkflowUpdateFailedError):
        await handle.execute_update(
            "complete_stage",
            {"request_id": "raw-1", "actor": "rita", "stage": "prospecting", "facts": {"need": "a\u0000b"}},
        )
    history = await handle.fetch_history()
    kinds = {e.event_type for e in history.events}
    assert EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED not in kinds, "a refused update leaves no trace"
    assert EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED not in kinds
    assert await client.events(deal) == before


async def _block_appends(pool: asyncpg.Pool, deal_id: str) -> None:
    """Make the log refuse every append of this deal, as it refuses a value it cannot hold."""
    name = f"block_{uuid.uuid4().hex[:8]}"
    await pool.execute(
        f"CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
        f" RAISE EXCEPTION 'refused by the test for deal %', NEW.deal_id USING ERRCODE = 'program_limit_exceeded';"
        f" END $$;"
        f" CREATE TRIGGER {name} BEFORE INSERT ON deal_events FOR EACH ROW"
        f" WHEN (NEW.deal_id = '{deal_id}') EXECUTE FUNCTION {name}()"
    )
    _BLOCKS[deal_id] = name


_BLOCKS: dict[str, str] = {}


async def _unblock(pool: asyncpg.Pool, deal_id: str) -> None:
    name = _BLOCKS.pop(deal_id, None)
    if name:
        await pool.execute(f"DROP TRIGGER {name} ON deal_events; DROP FUNCTION {name}()")


@pytest.fixture
async def blocked(pool: asyncpg.Pool) -> AsyncIterator[list[str]]:
    """Deals whose appends the log refuses, until the test ends."""
    deals: list[str] = []
    yield deals
    for deal in deals:
        await _unblock(pool, deal)
    # a deal terminated while blocked keeps its record for good (its log does lack the events);
    # it is the test's own doing, and would fail every later /readyz of the session
    await pool.execute("DELETE FROM log_append_failures WHERE deal_id = ANY($1::text[])", deals)


async def _recorded(pool: asyncpg.Pool, deal_id: str, attempts: int) -> log_failures.AppendFailure:
    async def failed_enough() -> bool:
        found = await log_failures.of_deal(pool, deal_id)
        return found is not None and found.attempts >= attempts

    await wait_for(failed_enough, timeout=30)
    found = await log_failures.of_deal(pool, deal_id)
    assert found is not None
    return found


async def test_an_append_the_log_refuses_is_seen_everywhere_and_heals(
    client: DealflowClient, pool: asyncpg.Pool, cli_env: dict[str, str], blocked: list[str]
) -> None:
    deal = new_deal_id("stuck")
    await client.start_deal("seven-stage", deal, "rita")
    await _block_appends(pool, deal)
    blocked.append(deal)
    done = await client.lose(deal, "timing", actor="rita", note="frozen")

    failure = await _recorded(pool, deal, attempts=2)
    assert (failure.first_seq, failure.last_seq) == (3, done.last_seq)
    assert "refused by the test" in failure.error

    # the deal's status says so, in JSON and in words
    status = await client.status(deal)
    assert status.log_failure is not None and status.state.status == "open", "the log still ends before the loss"
    shown = await dealflow(cli_env, "deal", "status", deal)
    assert shown.code == 0 and f"WARNING: {failure.describe().split(':')[0]}" in shown.out, shown.out
    assert (await dealflow(cli_env, "deal", "status", deal, "--json")).json()["log_failure"]["first_seq"] == 3

    # verify: a strict prefix of the history is a finding, with its code and the missing seqs
    run = await dealflow(cli_env, "audit", "verify", deal, "--json")
    assert run.code == 1, run.out
    [verdict] = run.json()
    [finding] = verdict["findings"]
    assert finding["code"] == "missing_from_log" and finding["seqs"] == list(range(3, done.last_seq + 1))
    assert any("is failing" in n and "refused by the test" in n for n in verdict["notes"]), verdict["notes"]

    # alerted: /readyz's check past its grace, and the gauge
    check = await log_appends(pool, grace=0)
    assert not check.ok and "appends are failing" in check.detail
    metrics = DealflowMetrics(pool)
    await metrics.store.refresh()
    [gauge] = [m for m in metrics.store.collect() if m.name == "dealflow_log_appends_failing"]
    assert gauge.samples[0].value >= 1

    # the log takes the batch once it can: the deal's log catches up, verify is ok again
    await _unblock(pool, deal)

    async def caught_up() -> bool:
        return await event_log.last_seq(pool, deal) == done.last_seq

    await wait_for(caught_up, timeout=90)  # the append's retries back off to a minute at most
    assert (await client.status(deal)).state.status == "lost"
    assert await log_failures.of_deal(pool, deal) is None
    assert (await audit_service.verify_running(client, deal)).ok


async def test_verify_all_finds_a_deal_missing_from_the_log(
    client: DealflowClient,
    pool: asyncpg.Pool,
    cli_env: dict[str, str],
    orders: tuple[Path, Path, str],
    blocked: list[str],
) -> None:
    from definitions.loader import load_file

    pinned: PinnedDefinition = load_file(orders[0])
    await registry.deploy(pool, pinned, deployed_by="tests", source="orders-v1.yaml")
    sound, missing = new_deal_id("sound"), new_deal_id("missing")
    await _block_appends(pool, missing)
    blocked.append(missing)
    await client.start_deal(orders[2], sound, "rita")
    await client.start_deal(orders[2], missing, "rita")
    await _recorded(pool, missing, attempts=2)
    with pytest.raises(LogLagging) as lagging:
        await client.status(missing)
    assert "is in Temporal's history but not in the log" in lagging.value.message

    async def listed() -> bool:  # Temporal's visibility store lists a workflow shortly after its start
        return missing in await audit_service.deals_in_temporal(client, process=orders[2])

    await wait_for(listed)
    run = await dealflow(cli_env, "audit", "verify", "--all", "--process", orders[2], "--json")
    assert run.code == 1, run.out + run.err
    verdicts = {v["deal_id"]: v for v in run.json()}
    assert set(verdicts) == {sound, missing}
    assert verdicts[sound]["ok"]
    assert verdicts[missing]["log_events"] == 0 and verdicts[missing]["history_events"] == 2
    assert [f["code"] for f in verdicts[missing]["findings"]] == ["missing_from_log"]
    assert verdicts[missing]["findings"][0]["seqs"] == [1, 2]

    # a run that ended without its append (terminated here) still lacks the events: still a finding
    await client.temporal.get_workflow_handle(workflow_id(missing)).terminate(reason="test: stuck for good")
    after = await audit_service.verify_running(client, missing)
    assert [(f.code, f.seqs) for f in after.findings] == [("missing_from_log", (1, 2))]


def _closed_export(path: Path, tag: str) -> str:
    now = datetime.now(UTC).replace(microsecond=0)
    rows = [
        "deal_id,stage,entered_at,owner,value,lost_reason",
        f"w-{tag},prospecting,{(now - timedelta(days=30)).isoformat()},rita,500,",
        f"w-{tag},lost,{(now - timedelta(days=20)).isoformat()},rita,500,timing",
    ]
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return str(path)


async def _rewrite(pool: asyncpg.Pool, deal_id: str, sql: str, *args: object) -> None:
    async with pool.acquire() as conn:
        # as an attacker with the database's superuser would: past the append-only triggers
        await conn.execute("SET session_replication_role = replica")
        await conn.execute(sql, deal_id, *args)
        await conn.execute("RESET session_replication_role")


async def test_verify_checks_imported_closed_deals_against_their_chain_and_import_record(
    client: DealflowClient, pool: asyncpg.Pool, cli_env: dict[str, str], tmp_path: Path
) -> None:
    tag = uuid.uuid4().hex[:8]
    run = await dealflow(
        cli_env, "import", "csv", _closed_export(tmp_path / "old.csv", tag), "--process", "seven-stage"
    )
    assert run.code == 0, run.out + run.err
    deal = f"csv-w-{tag}"
    assert deal in await audit_service.deals_to_verify(client), "--all covers deals no workflow ever ran"
    assert (await audit_service.verify_running(client, deal)).ok

    # an altered payload breaks the chain
    await _rewrite(
        pool,
        deal,
        "UPDATE deal_events SET payload = jsonb_set(payload, '{reason}', '\"no-budget\"')"
        " WHERE deal_id = $1 AND type = 'DealLost'",
    )
    verified = await dealflow(cli_env, "audit", "verify", deal, "--json")
    assert verified.code == 1
    assert "hash_mismatch" in [f["code"] for f in verified.json()[0]["findings"]]

    # and a rewrite that recomputes the whole chain still departs from what the import recorded
    rows = await pool.fetch(
        "SELECT seq, payload::text AS payload FROM deal_events WHERE deal_id = $1 ORDER BY seq", deal
    )
    links = chained(GENESIS, [canonical_document(json.loads(r["payload"])) for r in rows])
    for row, (prev, digest) in zip(rows, links, strict=True):
        await _rewrite(
            pool,
            deal,
            "UPDATE deal_events SET prev_hash = $2, hash = $3 WHERE deal_id = $1 AND seq = $4",
            prev,
            digest,
            row["seq"],
        )
    verdict = await audit_service.verify_running(client, deal)
    assert [f.code for f in verdict.findings] == ["import_record"], verdict.findings
    assert "rewritten?" in verdict.findings[0].message
