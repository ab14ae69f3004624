"""The web app under outage and overload, against the real servers: it answers fast and truly
(201 only for a deal reads find, 202 otherwise; 429 and 503 with Retry-After), reports its health,
and an Idempotency-Key left reserved by a server that died is taken over by the repeat, which
gets the first answer back."""

from __future__ import annotations

import asyncio
import hashlib
import time
import uuid
from dataclasses import replace

import asyncpg
import pytest

from client.api import DealflowClient
from store import idempotency
from store.db import connect_pool
from tests.support import new_deal_id
from tests.support.web import app_over, http
from web.app import create_app
from web.idempotency import HEADER
from web.settings import WebSettings

pytestmark = pytest.mark.usefixtures("deployed")


def _unserved(client: DealflowClient, deadline: float = 3.0) -> DealflowClient:
    """A client whose deals go to a task queue no worker polls: the worker is gone."""
    settings = replace(client.settings, task_queue=f"nobody-{uuid.uuid4().hex[:6]}", request_deadline_seconds=deadline)
    return DealflowClient(client.temporal, client.pool, settings)


async def test_a_start_no_worker_runs_is_202_and_an_action_503_within_the_deadline(client: DealflowClient) -> None:
    app = create_app(WebSettings(None, 0, "k", None, (), False), _unserved(client))
    deal = new_deal_id("noworker")
    async with http(app) as api:
        asked = time.monotonic()
        started = await api.post("/api/v1/deals", json={"process": "seven-stage", "deal_id": deal})
        assert started.status_code == 202, started.text
        assert started.json()["readable"] is False and started.headers["location"] == f"/api/v1/deals/{deal}"
        assert (await api.get(f"/api/v1/deals/{deal}")).status_code == 404, "202 promised nothing readable"

        acted = await api.post(f"/api/v1/deals/{deal}/lose", json={"reason": "timing"}, headers={HEADER: "lose-1"})
        assert acted.status_code == 503 and acted.headers["retry-after"] == "2", acted.text
        assert acted.json()["code"] == "outcome_unknown"
        assert time.monotonic() - asked < 15, "answered within the deadline, not after a minute"
    await client.temporal.get_workflow_handle(f"deal-{deal}").terminate(reason="test: no worker")


async def test_a_start_that_reads_find_is_201(client: DealflowClient) -> None:
    async with http(app_over(client)) as api:
        deal = new_deal_id("readable")
        started = await api.post("/api/v1/deals", json={"process": "seven-stage", "deal_id": deal})
        assert started.status_code == 201 and started.json()["readable"] is True
        assert (await api.get(started.headers["location"])).status_code == 200


async def test_writes_past_the_admission_limit_are_429_with_retry_after(
    client: DealflowClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DEALFLOW_WEB_MAX_WRITES", "1")
    app = create_app(WebSettings(None, 0, "k", None, (), False), _unserved(client, deadline=4.0))
    async with http(app) as api:
        first = asyncio.create_task(
            api.post("/api/v1/deals", json={"process": "seven-stage", "deal_id": new_deal_id("slow")})
        )
        await asyncio.sleep(0.5)  # the first start waits for a worker that never comes
        second = await api.post("/api/v1/deals", json={"process": "seven-stage", "deal_id": new_deal_id("over")})
        assert second.status_code == 429 and second.headers["retry-after"] == "1", second.text
        assert second.json()["code"] == "overloaded"
        assert (await first).status_code == 202
        assert app.state.admission.refused == 1 and app.state.admission.in_flight == 0


async def test_a_read_that_did_not_reach_min_seq_is_marked_stale(client: DealflowClient) -> None:
    deal = new_deal_id("stale")
    await client.start_deal("seven-stage", deal, "rita")
    async with http(app_over(client)) as api:
        fresh = await api.get(f"/api/v1/deals/{deal}", params={"min_seq": 1})
        assert fresh.json()["stale"] is False and "dealflow-stale" not in fresh.headers
        old = await api.get(f"/api/v1/deals/{deal}", params={"min_seq": 99})
        assert old.status_code == 200 and old.json()["stale"] is True
        assert old.headers["dealflow-stale"] == "last_seq=2; min_seq=99"


async def test_livez_readyz_and_a_database_outage_answered_503(client: DealflowClient, database_url: str) -> None:
    async with http(app_over(client)) as api:
        assert (await api.get("/livez")).text == "ok\n"
        ready = await api.get("/readyz")
        assert ready.status_code == 200, ready.text
        assert [line.split(":")[0] for line in ready.text.splitlines()] == [
            "ok postgresql",
            "ok temporal",
            "ok event-log",
        ]
    closed = await connect_pool(database_url, max_size=1)
    await closed.close()
    down = DealflowClient(client.temporal, closed, client.settings)
    async with http(create_app(WebSettings(None, 0, "k", None, (), False), down)) as api:
        ready = await api.get("/readyz")
        assert ready.status_code == 503 and "fail postgresql" in ready.text
        listed = await api.get("/api/v1/deals")
        assert listed.status_code == 503 and listed.headers["retry-after"] == "2", listed.text
        assert listed.json()["code"] == "unavailable"


async def _left_reserved(pool: asyncpg.Pool, key: str, method: str, path: str, body: bytes) -> None:
    """The reservation a server leaves when it dies mid-request: in progress, its lease run out."""
    digest = hashlib.sha256(body).hexdigest()
    assert await idempotency.reserve(pool, "local", key, method, path, digest, "dead-server", lease=0) is None


async def test_a_key_left_reserved_by_a_dead_server_is_taken_over_and_answers_as_the_first(
    client: DealflowClient, pool: asyncpg.Pool
) -> None:
    deal = new_deal_id("takeover")
    await client.start_deal("seven-stage", deal, "local")
    body = b'{"reason":"timing","note":"frozen"}'
    key = f"lose-{uuid.uuid4().hex[:6]}"
    # the dead server's request took effect (the deal recorded it under the key) before it died
    first = await client.lose(deal, "timing", actor="local", note="frozen", request_id=key)
    await _left_reserved(pool, key, "POST", f"/api/v1/deals/{deal}/lose", body)
    events = await client.events(deal, min_seq=first.last_seq)
    async with http(app_over(client)) as api:
        headers = {HEADER: key, "content-type": "application/json"}
        again = await api.post(f"/api/v1/deals/{deal}/lose", content=body, headers=headers)
        assert again.status_code == 200, again.text
        assert again.json() == first.model_dump(mode="json"), "the first answer, from the deal's log"
        repeat = await api.post(f"/api/v1/deals/{deal}/lose", content=body, headers=headers)
        assert repeat.headers["idempotent-replayed"] == "true" and repeat.json() == again.json()
    assert await client.events(deal) == events, "nothing applied twice"
    stuck = await pool.fetchval("SELECT count(*) FROM api_requests WHERE key = $1 AND status = 0", key)
    assert stuck == 0


async def test_a_live_reservation_is_not_taken_over(client: DealflowClient, pool: asyncpg.Pool) -> None:
    deal = new_deal_id("held")
    await client.start_deal("seven-stage", deal, "local")
    key = f"held-{uuid.uuid4().hex[:6]}"
    body = b'{"reason":"timing"}'
    digest = hashlib.sha256(body).hexdigest()
    assert await idempotency.reserve(pool, "local", key, "POST", f"/api/v1/deals/{deal}/lose", digest, "alive") is None
    async with http(app_over(client)) as api:
        headers = {HEADER: key, "content-type": "application/json"}
        busy = await api.post(f"/api/v1/deals/{deal}/lose", content=body, headers=headers)
    assert busy.status_code == 409 and busy.json()["code"] == "request_in_progress"
    assert (await client.status(deal)).state.status == "open"


async def test_a_start_repeated_under_its_key_after_a_lost_answer_answers_as_the_first(client: DealflowClient) -> None:
    deal = new_deal_id("restart")
    key = f"start-{uuid.uuid4().hex[:6]}"
    # the first attempt started the deal, and its answer was lost (a 503): the key was released
    first = await client.start_deal("seven-stage", deal, "local", actor="local", request_id=key)
    async with http(app_over(client)) as api:
        again = await api.post("/api/v1/deals", json={"process": "seven-stage", "deal_id": deal}, headers={HEADER: key})
        assert again.status_code == 201, again.text
        assert again.json() == first.model_dump(mode="json")
        other = await api.post(
            "/api/v1/deals", json={"process": "seven-stage", "deal_id": deal}, headers={HEADER: key + "-other"}
        )
        assert other.status_code == 409 and other.json()["code"] == "deal_exists"
