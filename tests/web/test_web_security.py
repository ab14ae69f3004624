"""Who may do what over the network: tokens (missing, unknown, revoked, expired: 401), roles
(403 over the API, and not offered in the pages), CSRF on every form, a trusted sign-on proxy,
HTML in deal data shown as text, and outages answered 503."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from app import token_service
from client.api import DealflowClient
from definitions.loader import PinnedDefinition
from store import event_log, tokens
from tests.support import ROOT, new_deal_id
from tests.support.web import app_over, csrf_of, http, policy
from web.app import create_app
from web.serve import listen_host
from web.settings import WebSettings
from worker.settings import SettingsError

SCRIPT = "<script>alert('xss')</script>"
IMG = '<img src=x onerror="alert(1)">'
PROSPECTING = {"need": "x", "can_afford": "yes"}


async def _token(client: DealflowClient, name: str, **kw: Any) -> str:
    token, _ = await token_service.create(
        DealflowClient(client.temporal, client.pool, client.settings, policy()), name, created_by="olga", **kw
    )
    return token


async def test_requests_without_a_valid_token_are_refused_401(client: DealflowClient) -> None:
    app = app_over(client, policy())
    good = await _token(client, "rita")
    revoked = await _token(client, "rita")
    await tokens.revoke(client.pool, revoked.split("_")[1], revoked_by="tests")
    expired, _ = await tokens.create(
        client.pool, "rita", created_by="tests", expires_at=datetime.now(UTC) - timedelta(minutes=1)
    )
    cases = {
        None: "sign in",
        "dft_nope_nope": "not one this server issued",
        good[:-2] + "xx": "not one this server issued",
        revoked: "was revoked",
        expired: "expired",
    }
    for token, why in cases.items():
        async with http(app, token) as api:
            answer = await api.get("/api/v1/deals")
        assert answer.status_code == 401, token
        assert answer.json()["code"] == "unauthenticated" and why in answer.json()["message"]
        assert answer.headers["WWW-Authenticate"] == "Bearer"
    async with http(app, **{"Authorization": "Basic cml0YTo="}) as api:
        assert (await api.get("/api/v1/deals")).status_code == 401
    async with http(app, good) as api:
        me = (await api.get("/api/v1/me")).json()
        assert (me["name"], me["role"], me["via"]) == ("rita", "rep", "token")
    async with http(app) as browser:
        page = await browser.get("/board")
        assert page.status_code == 303 and page.headers["location"].startswith("/signin?next=%2Fboard")


async def test_each_role_is_refused_what_it_may_not_do_over_the_api(
    client: DealflowClient, deployed: dict[str, PinnedDefinition]
) -> None:
    app = app_over(client, policy())
    deal_id = new_deal_id("sec")
    names = ["rita", "bob", "mona", "olga", "ada"]
    api = {name: http(app, await _token(client, name)) for name in names}
    try:
        start = {"process": "seven-stage", "deal_id": deal_id, "owner": "rita"}
        assert (await api["ada"].post("/api/v1/deals", json=start)).status_code == 403
        assert (await api["olga"].post("/api/v1/deals", json=start)).status_code == 403
        assert (await api["bob"].post("/api/v1/deals", json=start)).status_code == 403, "a rep starts only own deals"
        assert (await api["rita"].post("/api/v1/deals", json=start)).status_code == 201
        before = await event_log.last_seq(client.pool, deal_id)

        complete = {"stage": "prospecting", "facts": PROSPECTING}
        for name, why in [
            ("ada", "ada is auditor: may read, not act"),
            ("olga", "olga is ops: may deploy, experiment, import, migrate, read, not act"),
            ("bob", "owned by rita"),
        ]:
            refused = await api[name].post(f"/api/v1/deals/{deal_id}/complete", json=complete)
            assert (refused.status_code, refused.json()["code"]) == (403, "forbidden"), name
            assert why in refused.json()["message"]
        assert await event_log.last_seq(client.pool, deal_id) == before, "no refusal recorded an event"
        managed = await api["mona"].post(f"/api/v1/deals/{deal_id}/complete", json=complete)
        assert managed.status_code == 200, "a manager acts on a deal of their team"

        for name in ("rita", "mona", "ada"):
            body = {"filename": "seven.yaml", "yaml": _seven_stage_yaml()}
            refused = await api[name].post("/api/v1/definitions", json=body)
            assert (refused.status_code, refused.json()["code"]) == (403, "forbidden"), name
            exp = await api[name].post(
                "/api/v1/experiments", json={"yaml": "experiment: x\nprocess: seven-stage\narms: []\n"}
            )
            assert exp.status_code in (403, 422), name
        ops = await api["olga"].post(
            "/api/v1/definitions", json={"filename": "seven.yaml", "yaml": _seven_stage_yaml()}
        )
        assert ops.status_code == 201, ops.text

        refusals = (await api["ada"].get("/api/v1/audit/refusals", params={"limit": 50})).json()
        assert {"ada", "olga", "bob"} <= {r["actor"] for r in refusals}
    finally:
        for c in api.values():
            await c.aclose()


def _seven_stage_yaml() -> str:
    return (ROOT / "tests" / "processes" / "nine-stage.yaml").read_text(encoding="utf-8")


async def _signed_in(app: Any, token: str) -> httpx.AsyncClient:
    browser = http(app)
    form = await browser.get("/signin")
    answer = await browser.post("/signin", data={"csrf_token": csrf_of(form.text), "token": token, "next": "/board"})
    assert answer.status_code == 303, answer.text
    return browser


async def test_pages_offer_no_action_the_role_may_not_take(
    client: DealflowClient, deployed: dict[str, PinnedDefinition]
) -> None:
    app = app_over(client, policy())
    deal_id = new_deal_id("sec")
    await DealflowClient(client.temporal, client.pool, client.settings, policy()).start_deal(
        "seven-stage", deal_id, "rita", actor="rita"
    )
    rita = await _signed_in(app, await _token(client, "rita"))
    ada = await _signed_in(app, await _token(client, "ada"))
    try:
        own = (await rita.get(f"/deals/{deal_id}")).text
        assert "Complete stage" in own and "Mark lost" in own
        read_only = (await ada.get(f"/deals/{deal_id}")).text
        assert "Complete stage" not in read_only and "Mark lost" not in read_only and "Move the deal" not in read_only
        assert "auditors read, they change nothing" in read_only
        assert "Start a deal" in (await rita.get("/board?process=seven-stage")).text
        assert "Start a deal" not in (await ada.get("/board?process=seven-stage")).text

        # a form posted anyway is refused by the same rules, shown in words, and changes nothing
        before = await event_log.last_seq(client.pool, deal_id)
        form = {"csrf_token": csrf_of(read_only), "stage": "prospecting", "fact.need": "x", "fact.can_afford": "yes"}
        posted = await ada.post(f"/deals/{deal_id}/complete", data=form)
        assert (posted.status_code, posted.headers["location"]) == (303, f"/deals/{deal_id}")
        shown = await ada.get(posted.headers["location"])
        assert "Refused (forbidden)" in shown.text and "auditors read" in shown.text
        assert await event_log.last_seq(client.pool, deal_id) == before
    finally:
        await rita.aclose()
        await ada.aclose()


async def test_a_post_without_the_csrf_token_is_refused(
    client: DealflowClient, deployed: dict[str, PinnedDefinition]
) -> None:
    app = app_over(client, policy())
    deal_id = new_deal_id("sec")
    token = await _token(client, "rita")
    rita = await _signed_in(app, token)
    try:
        page = await rita.get("/board?process=seven-stage")
        start = {"process": "seven-stage", "deal_id": deal_id, "owner": "rita"}
        for sent in ({}, {"csrf_token": "forged"}):
            refused = await rita.post("/board/start", data=start | sent)
            assert refused.status_code == 403 and "CSRF" in refused.text
        assert (await rita.post("/signout", data={})).status_code == 403
        api_write = await rita.post("/api/v1/deals", json=start)
        assert (api_write.status_code, api_write.json()["code"]) == (403, "csrf_failed")
        assert await event_log.count(client.pool, deal_id) == 0, "nothing was started"
        with_header = await rita.post("/api/v1/deals", json=start, headers={"X-CSRF-Token": csrf_of(page.text)})
        assert with_header.status_code == 201

        # revoking the token ends the browser session it signed in
        await tokens.revoke(client.pool, token.split("_")[1], revoked_by="tests")
        after = await rita.get("/board")
        assert after.status_code == 303 and "revoked" in after.headers["location"]
    finally:
        await rita.aclose()


async def test_a_session_cookie_is_httponly_and_samesite(client: DealflowClient) -> None:
    app = app_over(client, policy())
    async with http(app) as browser:
        answer = await browser.get("/signin")
    cookie = answer.headers["set-cookie"].lower()
    assert "dealflow_session=" in cookie and "httponly" in cookie and "samesite=strict" in cookie


async def test_html_in_deal_data_is_shown_as_text(
    client: DealflowClient, deployed: dict[str, PinnedDefinition]
) -> None:
    deal_id = new_deal_id("xss")
    await client.start_deal("seven-stage", deal_id, "rita", fields={"customer": SCRIPT, "note": IMG})
    await client.complete_stage(deal_id, "prospecting", actor="rita", facts={"need": IMG, "can_afford": "yes"})
    result = await client.lose(deal_id, "no-budget", actor="rita", note=SCRIPT)
    async with http(app_over(client)) as browser:
        pages = [
            (await browser.get(f"/deals/{deal_id}", params={"seq": result.last_seq})).text,
            (await browser.get("/board", params={"process": "seven-stage", "owner": SCRIPT})).text,
        ]
    for page in pages:
        assert "<script>alert" not in page and "<img src=x" not in page
    assert "&lt;script&gt;alert(" in pages[0] and "&lt;img src=x" in pages[0]
    assert "&lt;script&gt;alert(" in pages[1], "a filter echoed back is text too"


async def test_a_trusted_sign_on_proxy_names_the_caller_and_no_one_else_can(client: DealflowClient) -> None:
    import ipaddress

    trusted = app_over(
        client, policy(), sso_header="X-Forwarded-User", sso_proxies=(ipaddress.ip_network("127.0.0.1/32"),)
    )
    elsewhere = app_over(
        client, policy(), sso_header="X-Forwarded-User", sso_proxies=(ipaddress.ip_network("10.9.0.0/16"),)
    )
    async with http(trusted, **{"X-Forwarded-User": "mona"}) as api:
        me = (await api.get("/api/v1/me")).json()
        assert (me["name"], me["role"], me["via"]) == ("mona", "manager", "sso")
    async with http(trusted, **{"X-Forwarded-User": "mallory"}) as api:
        assert (await api.get("/api/v1/me")).status_code == 401
    async with http(elsewhere, **{"X-Forwarded-User": "mona"}) as api:
        assert (await api.get("/api/v1/me")).status_code == 401, "the header counts only from the proxy"


@pytest.mark.unit
def test_with_access_control_off_the_server_listens_on_loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = WebSettings(None, 8000, "k", None, (), False)
    assert listen_host(settings, access_on=False) == "127.0.0.1"
    with pytest.raises(SettingsError, match=r"access control is off, so the web app listens on 127\.0\.0\.1 only"):
        listen_host(replace(settings, host="0.0.0.0"), access_on=False)
    assert listen_host(replace(settings, host="0.0.0.0"), access_on=True) == "0.0.0.0"
    monkeypatch.setenv("DEALFLOW_SSO_HEADER", "X-User")
    monkeypatch.delenv("DEALFLOW_SSO_PROXY", raising=False)
    with pytest.raises(SettingsError, match="anyone could claim any identity"):
        WebSettings.resolve()


async def test_servers_that_cannot_be_reached_answer_503(client: DealflowClient, database_url: str) -> None:
    base, _, _ = database_url.rpartition("/")
    host_port = base.rsplit("@", 1)[-1]
    dead_db = database_url.replace(host_port, "127.0.0.1:9")  # nothing listens on port 9
    pool = await asyncpg.create_pool(dead_db, min_size=0, max_size=1)
    temporal = await Client.connect("127.0.0.1:9", lazy=True, data_converter=pydantic_data_converter)
    down = DealflowClient(temporal, pool, replace(client.settings, request_deadline_seconds=1.0))
    try:
        async with http(create_app(WebSettings(None, 0, "k", None, (), False), down)) as api:
            read = await api.get("/api/v1/deals")
            assert (read.status_code, read.json()["code"]) == (503, "unavailable")
            assert "PostgreSQL cannot be reached" in read.json()["message"]
        up_db = DealflowClient(temporal, client.pool, replace(client.settings, request_deadline_seconds=1.0))
        async with http(create_app(WebSettings(None, 0, "k", None, (), False), up_db)) as api:
            act = await api.post("/api/v1/deals/some-deal/complete", json={"stage": "prospecting"})
            assert act.status_code == 503, act.text
            assert act.json()["code"] in ("unavailable", "outcome_unknown")
    finally:
        await pool.close()
