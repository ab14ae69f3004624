"""Activities unit-tested with ActivityEnvironment: proposals, the outbox and every channel."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiosmtpd.controller import Controller
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.channels.base import Message, PermanentChannelError, TransientChannelError
from activities.channels.config import ChannelConfigError, ChannelRegistry, ChannelsConfig, load_channels
from activities.channels.outbox_dir import OutboxDirChannel
from activities.channels.smtp import SmtpChannel
from activities.channels.webhook import WebhookChannel
from activities.messages import MessageActivities
from activities.proposals import ProposalActivities
from domain.activity_io import OutgoingMessage, ProposalRequest
from store.embedded import free_port
from tests.support import new_deal_id

TEMPLATE = "# Offer for {customer}\n\nPrepared by **{owner}**.\n\n- Budget: {budget}\n"


def _request(**values: str) -> ProposalRequest:
    return ProposalRequest(deal_id="d-1", version="abc123", template_id="offer", template=TEMPLATE, values=values)


@pytest.mark.unit
async def test_proposal_is_markdown_and_html_with_a_hash(tmp_path: Path) -> None:
    env = ActivityEnvironment()
    acts = ProposalActivities(tmp_path)
    doc = await env.run(acts.generate_proposal, _request(customer="Acme <AS>", owner="alice", budget="50 000"))
    # recorded relative to the proposals directory: the deal's events name no server path
    assert (doc.path, doc.html_path) == ("d-1/offer-abc123.md", "d-1/offer-abc123.html")
    md, html = (tmp_path / doc.path).read_text(), (tmp_path / doc.html_path).read_text()
    assert md.startswith("# Offer for Acme <AS>") and "- Budget: 50 000" in md
    assert "<h1>Offer for Acme &lt;AS&gt;</h1>" in html and "<strong>alice</strong>" in html
    assert "<li>Budget: 50 000</li>" in html
    assert len(doc.content_hash) == 64
    mtime = (tmp_path / doc.path).stat().st_mtime_ns
    again = await env.run(acts.generate_proposal, _request(customer="Acme <AS>", owner="alice", budget="50 000"))
    assert again == doc and (tmp_path / doc.path).stat().st_mtime_ns == mtime  # idempotent: not even rewritten
    changed = await env.run(acts.generate_proposal, _request(customer="Acme <AS>", owner="alice", budget="60 000"))
    assert changed.path == doc.path and changed.content_hash != doc.content_hash


@pytest.mark.unit
async def test_missing_proposal_fact_is_a_named_non_retryable_failure(tmp_path: Path) -> None:
    with pytest.raises(ApplicationError) as caught:
        await ActivityEnvironment().run(ProposalActivities(tmp_path).generate_proposal, _request(customer="Acme"))
    assert caught.value.type == "MissingProposalFacts" and caught.value.non_retryable
    assert "needs owner, budget" in caught.value.message
    assert caught.value.details[0] == {"missing": ["owner", "budget"]}
    assert not any(tmp_path.rglob("*.md"))


DOCUMENT = """# Offer for {customer}

1. Discovery with `{owner}`
2. Pilot
3. Roll-out

See [our terms](https://example.com/terms?a=1&b=2) and [this](javascript:alert(1)).

```
budget <= {budget}
```

| item | price |
|------|-------|
| pilot | {budget} |

<script>alert("template")</script>

{need}
"""


@pytest.mark.unit
async def test_proposal_html_is_commonmark_lists_links_code_and_tables(tmp_path: Path) -> None:
    request = ProposalRequest(
        deal_id="d-2",
        version="abc123",
        template_id="offer",
        template=DOCUMENT,
        values={"customer": "Acme", "owner": "alice", "budget": "50 000", "need": "A *faster* CRM"},
    )
    doc = await ActivityEnvironment().run(ProposalActivities(tmp_path).generate_proposal, request)
    html = (tmp_path / doc.html_path).read_text()
    assert "<title>Offer for Acme</title>" in html
    assert "<ol>\n<li>Discovery with <code>alice</code></li>\n<li>Pilot</li>\n<li>Roll-out</li>\n</ol>" in html
    assert '<a href="https://example.com/terms?a=1&amp;b=2">our terms</a>' in html
    assert "<pre><code>budget &lt;= 50 000\n</code></pre>" in html
    assert "<th>item</th>" in html and "<td>pilot</td>\n<td>50 000</td>" in html
    assert "<p>A <em>faster</em> CRM</p>" in html  # a rep may emphasise within a fact


@pytest.mark.unit
async def test_raw_html_in_a_template_or_a_value_is_shown_as_text(tmp_path: Path) -> None:
    request = ProposalRequest(
        deal_id="d-3",
        version="abc123",
        template_id="offer",
        template=DOCUMENT,
        values={
            "customer": "<b>Acme</b>",
            "owner": "alice",
            "budget": "1",
            "need": '<script>alert("value")</script><img src=x onerror=alert(1)>',
        },
    )
    doc = await ActivityEnvironment().run(ProposalActivities(tmp_path).generate_proposal, request)
    html = (tmp_path / doc.html_path).read_text()
    assert "<script>alert" not in html and "<img" not in html and "<b>Acme" not in html
    assert "&lt;script&gt;alert(&quot;template&quot;)&lt;/script&gt;" in html
    assert "&lt;script&gt;alert(&quot;value&quot;)&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt;" in html
    assert "<h1>Offer for &lt;b&gt;Acme&lt;/b&gt;</h1>" in html
    assert "<title>Offer for &lt;b&gt;Acme&lt;/b&gt;</title>" in html
    assert "[this](javascript:alert(1))" in html and 'href="javascript' not in html  # not made a link


@pytest.mark.unit
async def test_a_malformed_proposal_template_is_a_named_non_retryable_failure(tmp_path: Path) -> None:
    request = ProposalRequest(deal_id="d-4", version="v", template_id="offer", template="# {a.b}", values={})
    with pytest.raises(ApplicationError) as caught:
        await ActivityEnvironment().run(ProposalActivities(tmp_path).generate_proposal, request)
    assert caught.value.type == "InvalidTemplate" and caught.value.non_retryable
    assert "template 'offer': line 1: {a.b}: attribute and index access" in caught.value.message


def _touch(deal: str, template: str, **values: str) -> OutgoingMessage:
    return OutgoingMessage(
        deal_id=deal,
        effect_key="touch/c#1/2",
        kind="touch",
        channel="email",
        recipient="buyer@example.com",
        touch_template=template,
        template_values=values,
        cadence_run="c#1",
        touch_no=2,
    )


async def test_the_send_activity_renders_a_touch_and_records_what_it_sent(pool: asyncpg.Pool, tmp_path: Path) -> None:
    channel = CountingChannel()
    acts = MessageActivities(pool, _registry(tmp_path, channel))
    deal = new_deal_id("touch")
    await ActivityEnvironment().run(
        acts.send_message, _touch(deal, "About {need}, {customer}", need="{owner}", customer="Fjord AS", owner="olav")
    )
    [sent] = channel.sent
    assert sent.subject == "About {owner}, Fjord AS"  # values are text, never templates themselves
    assert sent.body.startswith("About {owner}, Fjord AS\n\nDear Fjord AS,\n") and sent.body.endswith("olav\n")
    row = await pool.fetchrow("SELECT subject, body FROM outbox WHERE deal_id = $1", deal)
    assert row is not None and (row["subject"], row["body"]) == (sent.subject, sent.body)


async def test_a_touch_that_cannot_be_rendered_fails_for_good_and_sends_nothing(
    pool: asyncpg.Pool, tmp_path: Path
) -> None:
    channel = CountingChannel()
    acts = MessageActivities(pool, _registry(tmp_path, channel))
    deal = new_deal_id("typo")
    with pytest.raises(ApplicationError) as caught:
        await ActivityEnvironment().run(acts.send_message, _touch(deal, "About {need}, {customer}", owner="olav"))
    assert caught.value.type == "UnrenderableTouch" and caught.value.non_retryable
    assert caught.value.message.startswith(
        "touch 2 not sent: cannot render 'About {need}, {customer}': no value for need, customer"
    )
    assert caught.value.details[0] == {"missing": ["need", "customer"]}
    with pytest.raises(ApplicationError, match="attribute and index access"):
        await ActivityEnvironment().run(acts.send_message, _touch(deal, "About {need.x}", need="CRM", owner="olav"))
    assert channel.sent == []
    assert await pool.fetchval("SELECT count(*) FROM outbox WHERE deal_id = $1", deal) == 0


def _message(
    deal: str, key: str = "touch/c#1/1", channel: str = "email", recipient: str = "buyer@example.com"
) -> OutgoingMessage:
    return OutgoingMessage(
        deal_id=deal,
        effect_key=key,
        kind="touch",
        channel=channel,
        recipient=recipient,
        subject="Hello",
        body="Body",
        cadence_run="c#1",
        touch_no=1,
    )


class CountingChannel:
    def __init__(self, fail: Exception | None = None):
        self.name = "count"
        self.sent: list[Message] = []
        self.fail = fail

    async def send(self, message: Message) -> str:
        if self.fail:
            raise self.fail
        self.sent.append(message)
        return f"id-{len(self.sent)}"


def _registry(tmp_path: Path, channel: Any) -> ChannelRegistry:
    registry = ChannelRegistry(ChannelsConfig(), tmp_path)
    registry._channels["email"] = channel
    return registry


async def test_outbox_sends_once_whatever_the_retries(pool: asyncpg.Pool, tmp_path: Path) -> None:
    channel = CountingChannel()
    acts = MessageActivities(pool, _registry(tmp_path, channel))
    deal = new_deal_id("out")
    env = ActivityEnvironment()
    first = await env.run(acts.send_message, _message(deal))
    second = await env.run(acts.send_message, _message(deal))
    assert first.message_id == "id-1" and not first.already_sent
    assert second.message_id == "id-1" and second.already_sent
    assert len(channel.sent) == 1 and channel.sent[0].key == f"{deal}/touch/c#1/1"
    row = await pool.fetchrow("SELECT status, attempts, message_id FROM outbox WHERE deal_id = $1", deal)
    assert row is not None and (row["status"], row["attempts"], row["message_id"]) == ("sent", 1, "id-1")


async def test_concurrent_attempts_send_once(pool: asyncpg.Pool, tmp_path: Path) -> None:
    channel = CountingChannel()
    acts = MessageActivities(pool, _registry(tmp_path, channel))
    deal = new_deal_id("race")
    results = await asyncio.gather(*(ActivityEnvironment().run(acts.send_message, _message(deal)) for _ in range(5)))
    assert len(channel.sent) == 1
    assert sum(not r.already_sent for r in results) == 1


@pytest.mark.parametrize(
    ("error", "retryable", "status"),
    [
        (TransientChannelError("try later"), True, "retrying"),
        (PermanentChannelError("no such mailbox"), False, "failed"),
    ],
)
async def test_channel_failures_are_classified_and_recorded(
    pool: asyncpg.Pool, tmp_path: Path, error: Exception, retryable: bool, status: str
) -> None:
    acts = MessageActivities(pool, _registry(tmp_path, CountingChannel(fail=error)))
    deal = new_deal_id("fail")
    with pytest.raises(ApplicationError) as caught:
        await ActivityEnvironment().run(acts.send_message, _message(deal))
    assert caught.value.non_retryable is (not retryable)
    assert caught.value.type == ("TransientChannelError" if retryable else "PermanentChannelError")
    row = await pool.fetchrow("SELECT status, last_error FROM outbox WHERE deal_id = $1", deal)
    assert row is not None and row["status"] == status and str(error) in row["last_error"]


@pytest.mark.unit
async def test_outbox_dir_is_idempotent_by_key(tmp_path: Path) -> None:
    channel = OutboxDirChannel("email", tmp_path)
    msg = Message(
        key="d/touch/c#1/1", deal_id="d", kind="touch", channel="email", recipient="b@x", subject="S", body="B"
    )
    path = await channel.send(msg)
    assert await channel.send(msg) == path
    files = list(tmp_path.rglob("*.json"))
    assert len(files) == 1 and json.loads(files[0].read_text())["subject"] == "S"


class Inbox:
    def __init__(self) -> None:
        self.messages: list[Any] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if any(r.endswith("@bounce.example") for r in envelope.rcpt_tos):
            return "550 no such mailbox"
        self.messages.append(envelope)
        return "250 OK"


@pytest.fixture
def smtp_server() -> Iterator[tuple[Inbox, int]]:
    inbox = Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    yield inbox, port
    controller.stop()


async def test_smtp_channel_against_a_local_server(smtp_server: tuple[Inbox, int]) -> None:
    inbox, port = smtp_server
    channel = SmtpChannel("email", "127.0.0.1", port, sender="sales@example.com")
    msg = Message(
        key="d/touch/c#1/2",
        deal_id="d",
        kind="touch",
        channel="email",
        recipient="buyer@example.com",
        subject="Following up",
        body="Hello again",
    )
    message_id = await channel.send(msg)
    assert len(inbox.messages) == 1
    raw = inbox.messages[0].content.decode()
    assert "Subject: Following up" in raw and f"Message-ID: {message_id}" in raw and "Hello again" in raw
    assert message_id == channel.message_id(msg)  # derived from the key: receivers can deduplicate
    with pytest.raises(PermanentChannelError, match="550"):
        await channel.send(Message(**{**msg.__dict__, "recipient": "ghost@bounce.example"}))
    with pytest.raises(PermanentChannelError, match="not an e-mail address"):
        await channel.send(Message(**{**msg.__dict__, "recipient": "Acme AS"}))
    with pytest.raises(TransientChannelError, match="unreachable"):
        await SmtpChannel("email", "127.0.0.1", free_port(), timeout=2).send(msg)


class Hooks(BaseHTTPRequestHandler):
    received: list[tuple[dict[str, Any], str]] = []

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        Hooks.received.append((body, self.headers["Idempotency-Key"]))
        code = {"fail": 503, "reject": 422}.get(body["to"], 200)
        self.send_response(code)
        self.send_header("X-Message-Id", f"hook-{len(Hooks.received)}")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def webhook_url() -> Iterator[str]:
    server = HTTPServer(("127.0.0.1", 0), Hooks)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook"
    server.shutdown()


async def test_webhook_channel_against_a_local_server(webhook_url: str) -> None:
    Hooks.received.clear()
    channel = WebhookChannel("crm", webhook_url, headers={"X-Token": "t"})
    msg = Message(
        key="d/touch/c#1/3",
        deal_id="d",
        kind="touch",
        channel="crm",
        recipient="buyer",
        subject="Call",
        body="Call the buyer",
    )
    assert await channel.send(msg) == "hook-1"
    body, key = Hooks.received[0]
    assert body["subject"] == "Call" and key == "d/touch/c#1/3"
    with pytest.raises(TransientChannelError, match="503"):
        await channel.send(Message(**{**msg.__dict__, "recipient": "fail"}))
    with pytest.raises(PermanentChannelError, match="422"):
        await channel.send(Message(**{**msg.__dict__, "recipient": "reject"}))
    with pytest.raises(TransientChannelError, match="unreachable"):
        await WebhookChannel("crm", f"http://127.0.0.1:{free_port()}/x", timeout=2).send(msg)


@pytest.mark.unit
def test_channel_config_from_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "channels.yaml"
    config.write_text(
        "outbox_dir: " + str(tmp_path / "box") + "\n"
        "channels:\n"
        "  email: {type: smtp, host: 127.0.0.1, port: 2525, username_env: T_USER, password_env: T_PASS}\n"
        "  crm: {type: webhook, url: 'http://127.0.0.1:1/h'}\n"
    )
    monkeypatch.setenv("T_USER", "u")
    monkeypatch.setenv("T_PASS", "p")
    registry = load_channels(tmp_path, str(config))
    email = registry.get("email")
    assert isinstance(email, SmtpChannel) and (email.port, email.username, email.password) == (2525, "u", "p")
    assert isinstance(registry.get("crm"), WebhookChannel)
    phone = registry.get("phone")  # not configured: the outbox directory
    assert isinstance(phone, OutboxDirChannel) and phone.directory == tmp_path / "box"


@pytest.mark.unit
@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("channels: {email: {type: smtp}}", "smtp needs a host"),
        ("channels: {email: {type: pigeon}}", "channels.email.type"),
        ("colour: red", "colour"),
    ],
)
def test_bad_channel_config_is_named(tmp_path: Path, text: str, error: str) -> None:
    config = tmp_path / "channels.yaml"
    config.write_text(text)
    with pytest.raises(ChannelConfigError, match=error):
        load_channels(tmp_path, str(config))
