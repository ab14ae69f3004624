"""Files over the web: an uploaded definition reads no file of the server's (the attack of issue
24: a template naming /etc/passwd or the session key), proposals are served only from the
proposals directory whatever an event names, static files only from their own directory, the
session key file is its owner's only, and no page or API answer shows a server path."""

from __future__ import annotations

import base64
import html
import os
import stat
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from app import permissions
from app.access import AccessPolicy
from app.permissions import AccessDenied
from client.api import DealflowClient
from definitions.loader import PinnedDefinition
from domain.activity_io import AppendEvents, DealSnapshot
from domain.events import DealEvent, DealStarted, ProposalGenerated
from domain.state import fold
from store import event_log, registry
from tests.support import ROOT, SEVEN_FACTS, new_deal_id, wait_for
from tests.support.ops import orders, process_name
from tests.support.web import app_over, csrf_of, http
from web.errors import outage
from web.settings import WebSettings
from worker.settings import home, proposals_dir

PASSWD_LINE = "root:x:0:0"  # the first line of any /etc/passwd
SECRET = "the-session-signing-key-of-this-test"

# where a hostile definition points its proposal template, and what it must be told
ATTACKS = [
    ("/etc/passwd", "template file '/etc/passwd' is an absolute path"),
    ("../web-secret", "template file '../web-secret' steps out of the definition's directory ('..')"),
    ("../../.dealflow/web-secret", "template file '../../.dealflow/web-secret' steps out of the definition's"),
    ("templates/../../web-secret", "template file 'templates/../../web-secret' steps out of the definition's"),
    ("offer.md", "template file 'offer.md' not found in the definition's directory"),  # not uploaded
]


def _hostile(name: str, named: str) -> tuple[str, int]:
    """A definition whose proposal template is the file `named`; its text and the line naming it."""
    text = orders(1, name) + f"proposal_templates:\n  - id: offer\n    file: {named!r}\n"
    return text, len(text.splitlines())


def _no_server_path(text: str) -> None:
    shown_nowhere = {str(ROOT), str(home()), str(proposals_dir().resolve()), "/tmp/"}
    for path in shown_nowhere | {"dealflow-upload-", "dealflow-import-"}:
        assert path not in text, f"{path} is shown"


@pytest.mark.parametrize(("named", "words"), ATTACKS)
async def test_an_upload_naming_a_file_outside_its_own_is_refused_at_validate_and_deploy(
    client: DealflowClient, named: str, words: str
) -> None:
    name = process_name("attack")
    text, line = _hostile(name, named)
    # a file of the name sent along changes nothing: only what the definition names is looked for
    body = {"filename": "evil.yaml", "yaml": text, "templates": {"passwd": "x", "web-secret": "x"}}
    expected = f"evil.yaml:{line}: proposal_templates[0].file: {words}"
    async with http(app_over(client)) as api:
        answers = [
            await api.post("/api/v1/definitions/validate", json=body),
            await api.post("/api/v1/definitions", params={"dry_run": "true"}, json=body),
            await api.post("/api/v1/definitions", json=body),
        ]
    for answer in answers:
        assert (answer.status_code, answer.json()["code"]) == (422, "invalid_definition"), answer.text
        assert [p for p in answer.json()["details"] if p.startswith(expected)], answer.text
        assert PASSWD_LINE not in answer.text
        _no_server_path(answer.text)
    assert not [d for d in await registry.list_all(client.pool) if d.name == name], "nothing was deployed"


@pytest.mark.parametrize(("named", "words"), ATTACKS[:2])
async def test_the_upload_page_refuses_the_attack_at_preview_and_at_deploy(
    client: DealflowClient, named: str, words: str
) -> None:
    name = process_name("attack")
    text, line = _hostile(name, named)
    async with http(app_over(client)) as api:
        csrf = csrf_of((await api.get("/definitions")).text)
        files = [("definition", ("evil.yaml", text.encode(), "application/yaml"))]
        # a refused form redirects back to its page, which shows the refusal once (post/redirect/get)
        previewed = await api.post(
            "/definitions/preview", data={"csrf_token": csrf}, files=files, follow_redirects=True
        )
        # a deploy posted without any preview, as a hand-made form would be
        forged = {
            "csrf_token": csrf,
            "filename": "evil.yaml",
            "version": "0" * 12,
            "yaml": base64.b64encode(text.encode()).decode(),
        }
        deployed = await api.post("/definitions/deploy", data=forged, follow_redirects=True)
    for page in (previewed, deployed):
        assert [r.status_code for r in page.history] == [303] and page.status_code == 200, page.text
        shown = html.unescape(page.text)
        assert "Nothing was changed" in shown
        assert f"evil.yaml:{line}: proposal_templates[0].file: {words}" in shown
        assert PASSWD_LINE not in shown
        _no_server_path(shown)
    assert not [d for d in await registry.list_all(client.pool) if d.name == name]


async def test_an_upload_with_its_template_beside_it_still_deploys(client: DealflowClient) -> None:
    name = process_name("fine")
    text = orders(1, name) + "proposal_templates:\n  - {id: offer, file: templates/offer.md}\n"
    body = {"filename": "fine.yaml", "yaml": text, "templates": {"offer.md": "# Offer for {customer}\n"}}
    async with http(app_over(client)) as api:
        dry = await api.post("/api/v1/definitions", params={"dry_run": "true"}, json=body)
        assert dry.is_success and dry.json()["name"] == name, dry.text  # a preview: nothing stored
        assert not [d for d in await registry.list_all(client.pool) if d.name == name]
        done = await api.post("/api/v1/definitions", json=body)
    assert done.status_code == 201, done.text
    assert done.json()["source"] == "fine.yaml"
    assert (await registry.get(client.pool, name)).templates == {"offer": "# Offer for {customer}\n"}


async def test_a_proposal_is_recorded_and_served_by_its_place_and_no_page_shows_a_server_path(
    client: DealflowClient, deployed: dict[str, PinnedDefinition]
) -> None:
    deal_id = new_deal_id("proposal")
    await client.start_deal("seven-stage", deal_id, "rita", value=900, fields={"customer": "Fjord AS", "title": "CRM"})
    for stage in ("prospecting", "preparation", "needs-assessment"):
        await client.complete_stage(deal_id, stage, actor="rita", facts=SEVEN_FACTS[stage])

    async def generated() -> bool:
        return any(isinstance(e, ProposalGenerated) for e in await client.events(deal_id))

    await wait_for(generated)
    [event] = [e for e in await client.events(deal_id) if isinstance(e, ProposalGenerated)]
    version = deployed["seven-stage"].version
    assert (event.path, event.html_path) == (f"{deal_id}/proposal-{version}.md", f"{deal_id}/proposal-{version}.html")
    async with http(app_over(client)) as api:
        served = await api.get(f"/deals/{deal_id}/proposals/{event.seq}")
        assert served.status_code == 200 and "Proposal for Fjord AS" in served.text
        assert served.headers["content-security-policy"] == "sandbox"
        answers = [
            await api.get(f"/deals/{deal_id}"),
            await api.get("/audit", params={"deal": deal_id}),
            await api.get("/definitions"),
            await api.get("/definitions/seven-stage"),
            await api.get(f"/api/v1/deals/{deal_id}/events"),
            await api.get(f"/api/v1/audit/deals/{deal_id}/timeline"),
            await api.get("/api/v1/definitions"),
        ]
    for answer in answers:
        assert answer.status_code == 200, answer.text
        _no_server_path(answer.text)
    assert f"{deal_id}/proposal-{version}.html" in answers[0].text, "the deal page names the file by its place"
    listed = {d["name"]: d["source"] for d in answers[-1].json()}
    assert listed["seven-stage"] == "seven-stage.yaml"


async def test_a_proposal_event_reaches_no_file_outside_the_proposals_directory(
    client: DealflowClient, deployed: dict[str, PinnedDefinition], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Events recorded before paths were relative name absolute ones; whatever an event names, only
    an HTML file inside the proposals directory is served."""
    monkeypatch.setenv("DEALFLOW_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("DEALFLOW_PROPOSALS_DIR", str(tmp_path / "home" / "proposals"))
    deal_id = new_deal_id("forged")
    own = tmp_path / "home" / "proposals" / deal_id
    own.mkdir(parents=True)
    (tmp_path / "home" / "web-secret").write_text(SECRET)
    (own / "old-v1.html").write_text("<h1>An older proposal</h1>")
    (own / "notes.txt").write_text(SECRET)
    (own / "link.html").symlink_to(tmp_path / "home" / "web-secret")
    seven = deployed["seven-stage"]
    at = datetime.now(UTC)
    named = [
        str(own / "old-v1.html"),  # recorded by an older release: absolute, inside
        str(tmp_path / "home" / "web-secret"),
        "../web-secret",
        f"{deal_id}/../../web-secret",
        f"{deal_id}/link.html",
        f"{deal_id}/notes.txt",
        "/etc/passwd",
    ]
    events: list[DealEvent] = [
        DealStarted(
            seq=1,
            at=at,
            actor="a",
            deal_id=deal_id,
            process="seven-stage",
            version=seven.version,
            content_hash=seven.content_hash,
            owner="rita",
        ),
        *(
            ProposalGenerated(seq=i, at=at, actor="a", template="proposal", path=p, html_path=p, content_hash="h")
            for i, p in enumerate(named, start=2)
        ),
    ]
    batch = AppendEvents(deal_id=deal_id, events=events, snapshot=DealSnapshot.of(fold(events)))
    await event_log.append(client.pool, batch)
    async with http(app_over(client)) as api:
        answers = [await api.get(f"/deals/{deal_id}/proposals/{seq}") for seq in range(2, 2 + len(named))]
        page = await api.get(f"/deals/{deal_id}")
        logged = await api.get(f"/api/v1/deals/{deal_id}/events")
    assert answers[0].status_code == 200 and "An older proposal" in answers[0].text
    for answer in answers[1:]:
        assert answer.status_code == 404, answer.text
        assert SECRET not in answer.text and PASSWD_LINE not in answer.text
        assert str(tmp_path) not in answer.text
    assert page.status_code == 200 and f"{deal_id}/old-v1.html" in page.text
    assert str(tmp_path) not in page.text and str(tmp_path) not in logged.text
    assert [e["html_path"] for e in logged.json()[1:3]] == [f"{deal_id}/old-v1.html", "home/web-secret"]


@pytest.mark.parametrize(
    "url",
    [
        "/static/../app.py",
        "/static/..%2fapp.py",
        "/static/%2e%2e/app.py",
        "/static/%2e%2e%2f%2e%2e%2fpyproject.toml",
        "/static//etc/passwd",
        "/static/%2fetc%2fpasswd",
        "/static/....//app.py",
        "/api/docs-static/..%2f..%2fweb%2fapp.py",
    ],
)
async def test_static_files_are_served_from_their_own_directory_only(client: DealflowClient, url: str) -> None:
    async with http(app_over(client)) as api:
        answer = await api.get(url)
    assert answer.status_code in (400, 404), (url, answer.status_code)
    assert "create_app" not in answer.text and PASSWD_LINE not in answer.text and "[project]" not in answer.text


@pytest.mark.unit
def test_the_session_key_file_is_readable_by_its_owner_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEALFLOW_HOME", str(tmp_path))
    monkeypatch.delenv("DEALFLOW_SECRET_KEY", raising=False)
    made = WebSettings.resolve().secret_key
    key = tmp_path / "web-secret"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    os.chmod(key, 0o644)  # copied in by hand, say
    assert WebSettings.resolve().secret_key == made
    assert stat.S_IMODE(key.stat().st_mode) == 0o600


async def test_an_uploaded_export_is_named_by_its_own_name_in_a_refusal(
    client: DealflowClient, deployed: dict[str, PinnedDefinition]
) -> None:
    body = {"source": "csv", "process": "seven-stage", "files": {"changes.csv": "deal,when\nd1,2026-01-05\n"}}
    async with http(app_over(client)) as api:
        answer = await api.post("/api/v1/imports", json=body)
    assert (answer.status_code, answer.json()["code"]) == (422, "invalid_export"), answer.text
    assert answer.json()["message"].startswith("changes.csv: no column ")
    _no_server_path(answer.text)


@pytest.mark.unit
def test_an_unknown_identity_is_told_the_access_files_name_not_its_path() -> None:
    policy = AccessPolicy({}, "/srv/dealflow/home/access.yaml + DEALFLOW_IDENTITIES")
    with pytest.raises(AccessDenied) as denied:
        permissions.claim(policy, "zed", "deploy")
    assert denied.value.message == "'zed' is not a known identity (access.yaml + DEALFLOW_IDENTITIES)"


async def test_a_file_error_is_a_fault_that_names_no_path_not_an_outage(client: DealflowClient) -> None:
    app = app_over(client)

    async def unreadable() -> None:
        raise PermissionError(13, "Permission denied", str(home() / "web-secret"))

    app.add_api_route("/api/v1/unreadable", unreadable)
    app.add_api_route("/unreadable", unreadable)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as api:
        answers = [await api.get("/api/v1/unreadable"), await api.get("/unreadable")]
    for answer in answers:
        assert answer.status_code == 500, answer.text
        assert "web-secret" not in answer.text and "PostgreSQL" not in answer.text
        _no_server_path(answer.text)
    assert outage(ConnectionRefusedError(111, "Connection refused")) is not None, "a refused connection is one"
