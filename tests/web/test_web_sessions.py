"""Browser sessions: kept on the server, bound to the identity and the token they signed in with,
ended by signing out, limited to 12 h from sign-in and lapsing when idle; and the access file read
again when it changes, so that removing someone locks them out without a restart."""

from __future__ import annotations

import json
from base64 import b64decode, b64encode
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import itsdangerous
import pytest
from fastapi import FastAPI

from app import token_service
from app.access import PolicySource
from client.api import DealflowClient
from store import sessions
from tests.support.web import app_over, csrf_of, http, policy, settings

COOKIE = "dealflow_session"


class Clock:
    """The time a test app's sessions read, moved by the test (no test waits for it)."""

    def __init__(self) -> None:
        self.now = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **span: float) -> None:
        self.now += timedelta(**span)


async def _token(client: DealflowClient, name: str) -> tuple[str, str]:
    scoped = DealflowClient(client.temporal, client.pool, client.settings, policy())
    token, record = await token_service.create(scoped, name, created_by="olga")
    return token, record.token_id


async def _signed_in(app: FastAPI, token: str) -> httpx.AsyncClient:
    browser = http(app)
    form = await browser.get("/signin")
    answer = await browser.post("/signin", data={"csrf_token": csrf_of(form.text), "token": token, "next": "/board"})
    assert answer.status_code == 303, answer.text
    return browser


def _payload(cookie: str) -> dict[str, Any]:
    """What a session cookie holds (itsdangerous: data.timestamp.signature)."""
    found: dict[str, Any] = json.loads(b64decode(cookie.split(".", 1)[0]))
    return found


def _cookie_of(browser: httpx.AsyncClient) -> dict[str, Any]:
    return _payload(browser.cookies[COOKIE])


def _forged(session: dict[str, Any]) -> str:
    """A cookie signed with the server's own key, as by someone who read the key."""
    signer = itsdangerous.TimestampSigner(settings().secret_key)
    return signer.sign(b64encode(json.dumps(session).encode())).decode()


async def _me(app: FastAPI, cookie: str) -> httpx.Response:
    async with http(app, Cookie=f"{COOKIE}={cookie}") as browser:
        return await browser.get("/api/v1/me")


def _cleared(answer: httpx.Response) -> bool:
    sent = answer.headers.get("set-cookie", "")
    return sent.startswith(f"{COOKIE}=null;") or "expires=thu, 01 jan 1970" in sent.lower()


async def test_a_session_naming_another_identity_than_its_token_is_refused(client: DealflowClient) -> None:
    app = app_over(client, policy())
    olga_token, olga_id = await _token(client, "olga")
    olga = await _signed_in(app, olga_token)
    try:
        real = _cookie_of(olga)
        assert (real["identity"], real["token_id"]) == ("olga", olga_id) and real["sid"]
        assert (await olga.get("/api/v1/me")).json()["name"] == "olga"

        # the review's forgery: mona (a manager) with olga's own token id, no session of the server's
        legacy = await _me(app, _forged({"identity": "mona", "token_id": olga_id}))
        assert legacy.status_code == 401 and _cleared(legacy), legacy.headers
        assert "not one this server started" in legacy.json()["message"]

        # olga's real session id, relabelled as mona: refused, and that session is ended
        relabelled = await _me(app, _forged(real | {"identity": "mona"}))
        assert relabelled.status_code == 401 and _cleared(relabelled)
        assert "cookie was altered" in relabelled.json()["message"]
        record = await sessions.get(client.pool, real["sid"])
        assert record is not None and record.ended_because == "cookie altered"

        # a session row for mona bound to olga's token (no sign-in makes one): the token is checked
        # to be the session identity's own
        sid = await sessions.create(client.pool, "mona", olga_id, now=datetime.now(UTC), lifetime=timedelta(hours=12))
        bound = await _me(app, _forged({"sid": sid, "identity": "mona", "token_id": olga_id}))
        assert bound.status_code == 401 and _cleared(bound)
        assert f"its token {olga_id} is 'olga''s" in bound.json()["message"]
        async with http(app, Cookie=f"{COOKIE}={_forged({'sid': sid, 'identity': 'mona', 'token_id': olga_id})}") as b:
            page = await b.get("/board")
        assert page.status_code == 303 and page.headers["location"].endswith("reason=invalid")
    finally:
        await olga.aclose()


async def test_a_cookie_copied_before_sign_out_stops_working(client: DealflowClient) -> None:
    app = app_over(client, policy())
    rita = await _signed_in(app, (await _token(client, "rita"))[0])
    try:
        copied = rita.cookies[COOKIE]
        assert (await _me(app, copied)).json()["name"] == "rita", "the copy works while the session does"
        page = await rita.get("/board")
        out = await rita.post("/signout", data={"csrf_token": csrf_of(page.text)})
        assert out.status_code == 303 and out.headers["location"] == "/signin?reason=signed_out"
        after = await _me(app, copied)
        assert after.status_code == 401 and "(signed out)" in after.json()["message"]
        async with http(app, Cookie=f"{COOKIE}={copied}") as other:
            board = await other.get("/board")
        assert board.status_code == 303 and board.headers["location"].endswith("reason=ended")
        record = await sessions.get(client.pool, _payload(copied)["sid"])
        assert record is not None and record.ended_at is not None
    finally:
        await rita.aclose()


async def test_a_session_ends_12_hours_after_sign_in_however_busy_and_lapses_when_idle(
    client: DealflowClient,
) -> None:
    clock = Clock()
    app = app_over(client, policy(), clock=clock)
    token, _ = await _token(client, "rita")
    busy = await _signed_in(app, token)
    try:
        for _ in range(23):  # a request every 30 min, up to 11 h 30 min after sign-in
            clock.advance(minutes=30)
            assert (await busy.get("/api/v1/me")).status_code == 200, clock.now
        clock.advance(minutes=29, seconds=59)
        assert (await busy.get("/api/v1/me")).status_code == 200, "11:59:59 after sign-in"
        clock.advance(seconds=1)
        ended = await busy.get("/api/v1/me")
        assert ended.status_code == 401 and "reached its limit" in ended.json()["message"]
        assert ended.json()["details"] == {"reason": "expired"}
    finally:
        await busy.aclose()

    idle = await _signed_in(app, token)
    try:
        clock.advance(minutes=59)
        assert (await idle.get("/api/v1/me")).status_code == 200, "59 min without a request"
        clock.advance(minutes=60)
        lapsed = await idle.get("/api/v1/me")
        assert lapsed.status_code == 401 and lapsed.json()["details"] == {"reason": "idle"}
    finally:
        await idle.aclose()

    short = app_over(client, policy(), clock=clock, session_hours=1.0)
    brief = await _signed_in(short, token)
    try:
        clock.advance(minutes=59)
        assert (await brief.get("/api/v1/me")).status_code == 200
        clock.advance(minutes=1)
        assert (await brief.get("/api/v1/me")).json()["details"] == {"reason": "expired"}
    finally:
        await brief.aclose()


ACCESS = """identities:
  rita: {role: rep, team: east}
  mona: {role: manager, team: east}
  olga: {role: ops}
"""


async def test_a_change_to_the_access_file_takes_effect_without_a_restart(
    client: DealflowClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "access.yaml"
    path.write_text(ACCESS, encoding="utf-8")
    monkeypatch.setenv("DEALFLOW_ACCESS_FILE", str(path))
    monkeypatch.delenv("DEALFLOW_IDENTITIES", raising=False)
    app = app_over(client, PolicySource.load())
    rita_token, _ = await _token(client, "rita")
    mona = await _signed_in(app, (await _token(client, "mona"))[0])
    try:
        async with http(app, rita_token) as rita:
            assert (await rita.get("/api/v1/me")).json()["role"] == "rep"
            assert (await mona.get("/api/v1/me")).json()["role"] == "manager"

            # rita removed, mona made a rep of team west: both at their next request
            path.write_text(
                ACCESS.replace("  rita: {role: rep, team: east}\n", "").replace(
                    "mona: {role: manager, team: east}", "mona: {role: rep, team: west}"
                ),
                encoding="utf-8",
            )
            gone = await rita.get("/api/v1/me")
            assert gone.status_code == 401 and "'rita', who is no longer configured" in gone.json()["message"]
            me = (await mona.get("/api/v1/me")).json()
            assert (me["role"], me["team"]) == ("rep", "west")

            # a file that no longer reads signs no one in; access control stays on
            path.write_text("identities: [not, a, mapping\n", encoding="utf-8")
            assert (await mona.get("/api/v1/me")).status_code == 401
            async with http(app) as nobody:
                assert (await nobody.get("/api/v1/me")).status_code == 401, "not access control off"

            # put back, rita's token signs her in again
            path.write_text(ACCESS, encoding="utf-8")
            assert (await rita.get("/api/v1/me")).json()["name"] == "rita"
    finally:
        await mona.aclose()


@pytest.mark.unit
def test_an_access_file_that_goes_away_leaves_access_control_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "access.yaml"
    path.write_text(ACCESS, encoding="utf-8")
    monkeypatch.setenv("DEALFLOW_ACCESS_FILE", str(path))
    monkeypatch.setenv("DEALFLOW_IDENTITIES", "ada=auditor")
    source = PolicySource.load()
    first = source.current()
    assert first is not None and set(first.identities) == {"rita", "mona", "olga", "ada"}
    assert source.current() is first, "an unchanged file is not read again"
    path.unlink()
    gone = source.current()
    assert gone is not None and set(gone.identities) == {"ada"} and "(missing)" in gone.source
    path.write_text(ACCESS.replace("  olga: {role: ops}\n", ""), encoding="utf-8")
    back = source.current()
    assert back is not None and set(back.identities) == {"rita", "mona", "ada"}

    monkeypatch.delenv("DEALFLOW_ACCESS_FILE")
    monkeypatch.delenv("DEALFLOW_IDENTITIES")
    monkeypatch.setenv("DEALFLOW_HOME", str(tmp_path / "home"))
    never = PolicySource.load()
    assert never.current() is None, "no configuration: access control off, as before"
