"""What every request passes and every answer carries: a Host the server answers to (a page
elsewhere cannot drive a developer's server by DNS rebinding), a body within its route's limit
(413 before any work, declared or chunked), the security headers and a CSP without inline
scripts, a throttle on failed sign-ins that records them, and a sign-in page that shows only the
server's own words."""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from app import token_service
from client.api import DealflowClient
from definitions.loader import PinnedDefinition
from store import access_log, event_log, tokens
from tests.support import ROOT, new_deal_id
from tests.support.web import app_over, csrf_of, http, policy, served
from web.headers import CSP
from web.hygiene import answers_to, host_name
from web.settings import WebSettings
from worker.settings import SettingsError


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


async def _token(client: DealflowClient, name: str) -> str:
    scoped = DealflowClient(client.temporal, client.pool, client.settings, policy())
    return (await token_service.create(scoped, name, created_by="olga"))[0]


# --- Host -------------------------------------------------------------------------------------


async def test_with_access_control_off_a_foreign_host_is_refused_before_any_work(
    client: DealflowClient, deployed: dict[str, PinnedDefinition]
) -> None:
    deal_id = new_deal_id("rebind")
    start = {"process": "seven-stage", "deal_id": deal_id, "owner": "rita"}
    async with served(app_over(client)) as base:
        port = base.rsplit(":", 1)[1]
        async with httpx.AsyncClient(base_url=base) as web:
            # the review's request: a page at attacker.example, resolved to 127.0.0.1
            forged = await web.post("/api/v1/deals", json=start, headers={"Host": f"attacker.example:{port}"})
            assert forged.status_code == 400, forged.text
            assert forged.json()["code"] == "invalid_host" and "attacker.example" in forged.json()["message"]
            page = await web.get("/board", headers={"Host": "attacker.example"})
            assert page.status_code == 400 and "does not answer Host 'attacker.example'" in page.text
            assert await event_log.count(client.pool, deal_id) == 0, "nothing was started"
            for host in (f"127.0.0.1:{port}", f"localhost:{port}", "localhost", f"[::1]:{port}"):
                assert (await web.get("/signin", headers={"Host": host})).status_code == 200, host
            assert (await web.post("/api/v1/deals", json=start)).status_code == 201


async def test_with_access_control_on_the_allowed_hosts_are_configurable(client: DealflowClient) -> None:
    token = await _token(client, "ada")
    anywhere = app_over(client, policy())
    async with http(anywhere, token, Host="dealflow.example.com") as api:
        assert (await api.get("/api/v1/me")).status_code == 200, "no list: any name, the token decides"
    listed = app_over(client, policy(), allowed_hosts=("dealflow.example.com",))
    async with http(listed, token, Host="dealflow.example.com:8443") as api:
        assert (await api.get("/api/v1/me")).status_code == 200
    async with http(listed, token, Host="attacker.example") as api:
        assert (await api.get("/api/v1/me")).status_code == 400
    async with http(listed, token) as api:
        assert (await api.get("/api/v1/me")).status_code == 200, "loopback names always"


@pytest.mark.unit
def test_host_names_and_the_allowed_hosts_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    assert [host_name(h) for h in ("Example.COM:80", "[::1]:8000", "127.0.0.1", "localhost.")] == [
        "example.com",
        "::1",
        "127.0.0.1",
        "localhost",
    ]
    off = {"access_on": False, "bound": "127.0.0.1", "allowed": ("dealflow.example.com",)}
    assert answers_to("127.0.0.2", **off) and answers_to("localhost", **off)  # type: ignore[arg-type]
    assert not answers_to("dealflow.example.com", **off), "off: loopback only, whatever the list says"  # type: ignore[arg-type]
    assert not answers_to("", **off)  # type: ignore[arg-type]
    assert answers_to("10.1.2.3", access_on=True, bound="10.1.2.3", allowed=("x.example",)), "the bound address"
    monkeypatch.setenv("DEALFLOW_ALLOWED_HOSTS", " Dealflow.Example.com, ,other.example ")
    assert WebSettings.resolve().allowed_hosts == ("dealflow.example.com", "other.example")


# --- body size --------------------------------------------------------------------------------


async def _chunks(data: bytes, size: int = 64 * 1024) -> AsyncIterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


async def test_an_oversize_body_is_413_before_any_work_declared_or_chunked(
    client: DealflowClient, deployed: dict[str, PinnedDefinition]
) -> None:
    deal_id = new_deal_id("big")
    start = {"process": "seven-stage", "deal_id": deal_id, "owner": "rita"}
    big = httpx.Request("POST", "http://x", json=start | {"fields": {"note": "x" * (2 * 1024 * 1024)}}).read()
    async with served(app_over(client)) as base, httpx.AsyncClient(base_url=base) as web:
        json_type = {"content-type": "application/json"}
        declared = await web.post("/api/v1/deals", content=big, headers=json_type)
        assert declared.status_code == 413, declared.text
        assert declared.json()["code"] == "body_too_large" and "1,048,576 bytes" in declared.json()["message"]
        chunked = await web.post("/api/v1/deals", content=_chunks(big), headers=json_type)
        assert chunked.status_code == 413 and chunked.json()["code"] == "body_too_large", chunked.text
        page = await web.post(
            "/board/start",
            content=_chunks(b"process=seven-stage&deal_id=" + deal_id.encode() + b"&note=" + b"x" * 1_100_000),
            headers={"content-type": "application/x-www-form-urlencoded"},
        )
        assert page.status_code == 413 and "larger than this route takes" in page.text
        assert await event_log.count(client.pool, deal_id) == 0, "nothing was started"
        assert (await web.post("/api/v1/deals", json=start)).status_code == 201, "the same start, small, is taken"

        # the upload routes take more: a 1.5 MiB definition is read (and refused for what it is)
        upload = {"filename": "big.yaml", "yaml": "# " + "x" * 1_500_000 + "\nprocess: [\n"}
        checked = await web.post("/api/v1/definitions/validate", json=upload)
        assert checked.status_code == 422 and checked.json()["code"] == "invalid_definition", checked.text

    small = app_over(client, max_upload_bytes=2 * 1024 * 1024)
    async with http(small) as web:
        export = {"source": "csv", "process": "seven-stage", "files": {"deals.csv": "x" * 3 * 1024 * 1024}}
        refused = await web.post("/api/v1/imports", json=export)
        assert refused.status_code == 413 and "2,097,152 bytes" in refused.json()["message"]


@pytest.mark.unit
def test_body_limits_and_session_lifetimes_are_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    resolved = WebSettings.resolve()
    assert (resolved.max_body_bytes, resolved.max_upload_bytes) == (1024 * 1024, 256 * 1024 * 1024)
    assert (resolved.session_hours, resolved.session_idle_minutes) == (12.0, 60.0)
    monkeypatch.setenv("DEALFLOW_MAX_BODY_BYTES", "5000")
    monkeypatch.setenv("DEALFLOW_SESSION_HOURS", "8")
    assert (WebSettings.resolve().max_body_bytes, WebSettings.resolve().session_hours) == (5000, 8.0)
    for name, bad in [("DEALFLOW_MAX_BODY_BYTES", "1MB"), ("DEALFLOW_SESSION_IDLE_MINUTES", "-5")]:
        monkeypatch.setenv(name, bad)
        with pytest.raises(SettingsError, match=f"{name}='{bad}': give a"):
            WebSettings.resolve()
        monkeypatch.delenv(name)


# --- headers ----------------------------------------------------------------------------------


def _hygienic(answer: httpx.Response) -> None:
    csp = answer.headers.get(CSP, "")
    directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
    assert "'unsafe-inline'" not in directives["script-src"], csp
    assert directives["frame-ancestors"] == "'none'" and directives["object-src"] == "'none'"
    assert answer.headers["X-Content-Type-Options"] == "nosniff"
    assert answer.headers["Referrer-Policy"] == "no-referrer"
    assert answer.headers["X-Frame-Options"] == "DENY"


async def test_every_answer_carries_the_security_headers(client: DealflowClient) -> None:
    app = app_over(client, policy())

    async def boom() -> None:
        raise RuntimeError("a fault")

    app.add_api_route("/boom", boom)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as web:
        answers = {
            "page": await web.get("/signin"),
            "API": await web.get("/api/v1/me"),  # 401
            "static": await web.get("/static/app.css"),
            "not found": await web.get("/no-such-page"),
            "API not found": await web.get("/api/v1/no-such-route"),
            "too large": await web.post("/api/v1/deals", content=b"x" * (2 * 1024 * 1024)),
            "fault": await web.get("/boom"),
            "docs": await web.get("/api/docs"),
        }
    assert [a.status_code for a in answers.values()] == [200, 401, 200, 404, 404, 413, 500, 200]
    for what, answer in answers.items():
        _hygienic(answer)
        assert what == "docs" or "script-src 'self';" in answer.headers[CSP], what

    # Swagger UI's one inline script runs by its hash, no other
    docs = answers["docs"]
    inline = re.findall(r"<script>(.*?)</script>", docs.text, re.DOTALL)
    assert len(inline) == 1
    digest = base64.b64encode(hashlib.sha256(inline[0].encode()).digest()).decode()
    assert f"script-src 'self' 'sha256-{digest}';" in docs.headers[CSP]


@pytest.mark.unit
def test_no_template_has_an_inline_script_handler_or_style() -> None:
    found = []
    for path in sorted((ROOT / "web" / "templates").glob("*.html")):
        text = path.read_text(encoding="utf-8")
        for pattern in (r"<script(?![^>]*\bsrc=)[^>]*>", r"\son[a-z]+\s*=", r"\sstyle\s*=", r"javascript:"):
            found += [f"{path.name}: {m.group(0)}" for m in re.finditer(pattern, text, re.IGNORECASE)]
    assert not found, found


# --- sign-in ----------------------------------------------------------------------------------


async def test_failed_sign_ins_are_throttled_per_address_and_recorded(client: DealflowClient) -> None:
    since = datetime.now(UTC) - timedelta(seconds=1)
    clock = Clock()
    app = app_over(client, policy(), clock=clock)
    good = await _token(client, "rita")
    good_id = good.split("_")[1]
    async with http(app) as browser:
        csrf = csrf_of((await browser.get("/signin")).text)

        async def attempt(token: str) -> httpx.Response:
            return await browser.post("/signin", data={"csrf_token": csrf, "token": token, "next": "/board"})

        for i in range(5):
            assert (await attempt(f"dft_guess{i}_nope")).status_code == 401
        held = await attempt(good)
        assert held.status_code == 429 and held.headers["Retry-After"] == "1", held.text
        assert "too many failed sign-ins from 127.0.0.1" in held.text
        assert (await tokens.get(client.pool, good_id)).last_used_at is None, "the token was not even looked at"  # type: ignore[union-attr]
        assert (await attempt(good)).status_code == 429

        clock.now += timedelta(seconds=1)
        assert (await attempt("dft_guess5_nope")).status_code == 401
        again = await attempt(good)
        assert again.status_code == 429 and again.headers["Retry-After"] == "2", "each failure doubles the wait"
        clock.now += timedelta(seconds=2)
        assert (await attempt(good)).status_code == 303, "after the wait the right token signs in"
        csrf = csrf_of((await browser.get("/signin")).text)  # a new session, a new CSRF token
        assert (await attempt("dft_guess6_nope")).status_code == 401, "and the count starts again"

    refusals = [r for r in await access_log.read(client.pool, since=since) if r.action == "sign in"]
    failed = [r for r in refusals if r.target == "sign-in form" and "not one this server issued" in r.reason]
    assert {r.actor for r in failed} == {"127.0.0.1"} and len(failed) == 7
    assert {f"token guess{i}" for i in range(7)} == {r.reason.rsplit("(", 1)[1].rstrip(")") for r in failed}
    held_back = [r for r in refusals if r.reason.startswith("too many failed sign-ins")]
    assert len(held_back) == 2, "recorded once per wait, not per attempt"

    # bearer tokens count the same, and the API answers 429 with Retry-After
    api_app = app_over(client, policy(), clock=clock)
    for i in range(5):
        async with http(api_app, f"dft_api{i}_nope") as api:
            assert (await api.get("/api/v1/me")).status_code == 401
    async with http(api_app, good) as api:
        held_api = await api.get("/api/v1/me")
    assert (held_api.status_code, held_api.json()["code"], held_api.headers["Retry-After"]) == (429, "throttled", "1")


async def test_the_sign_in_page_shows_only_its_own_messages(client: DealflowClient) -> None:
    app = app_over(client, policy())
    planted = "Your account is locked: call +1 555 0100 and give your token"
    async with http(app) as browser:
        page = await browser.get("/signin", params={"reason": planted})
        assert page.status_code == 200 and "call +1 555" not in page.text and "locked" not in page.text
        scripted = await browser.get("/signin", params={"reason": "<b>x</b>"})
        assert "&lt;b&gt;" not in scripted.text and "<b>x</b>" not in scripted.text
        known = await browser.get("/signin", params={"reason": "expired"})
        assert "Your session reached its time limit: sign in again." in known.text
        assert "You signed out." in (await browser.get("/signin?reason=signed_out")).text
        redirected = await browser.get("/board")
        assert redirected.headers["location"] == "/signin?next=%2Fboard&reason=signin"
