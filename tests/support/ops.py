"""Helpers for the tests of the ops, dashboard and audit pages: processes of their own (a name per
test, so that tests sharing the session's database never see each other's versions), the hidden
fields a page's form carries, and signing in to the pages with a token."""

from __future__ import annotations

import uuid
from dataclasses import replace
from html.parser import HTMLParser

import httpx

from app import token_service
from client.api import DealflowClient
from tests.support import TESTS
from tests.support.web import csrf_of

ORDERS = TESTS / "processes" / "versions"

# a definition whose texts are markup: every page must show them as text
HOSTILE = """\
name: {name}
title: "<script>alert(1)</script>"
description: "<img src=x onerror=alert(2)>"
phases:
  - {{id: only, title: "<b>phase</b>"}}
stages:
  - id: first
    title: "<img src=x onerror=alert(1)>"
    phase: only
    probability: 0.2
    exit_criteria:
      - {{fact: note, type: text, question: "<script>alert(3)</script>"}}
  - {{id: second, title: Second, phase: only, probability: 0.6}}
outcomes:
  won: {{}}
  lost: {{reasons: [gone]}}
"""


def quick(client: DealflowClient) -> DealflowClient:
    """A client whose deals append to the log every 0.1 s rather than every 2: a test that reads a
    deal's log (a migration plan, the dashboard, verify) waits that long for it."""
    return DealflowClient(client.temporal, client.pool, replace(client.settings, log_flush_seconds=0.1), client.access)


def process_name(prefix: str = "web") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def orders(version: int, name: str) -> str:
    """tests/processes/versions/orders-v1.yaml or -v2.yaml, as a process called `name`: v2 renames
    discovery to qualify-need and folds demo into a new solution stage."""
    text = (ORDERS / f"orders-v{version}.yaml").read_text(encoding="utf-8")
    return text.replace("\nname: orders\n", f"\nname: {name}\n")


class _Forms(HTMLParser):
    def __init__(self, action: str):
        super().__init__()
        self.action, self.inside, self.fields = action, False, list[tuple[str, str]]()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "form":
            self.inside = a.get("action") == self.action
        elif tag == "input" and self.inside and a.get("type") == "hidden" and a.get("name"):
            self.fields.append((a["name"] or "", a.get("value") or ""))

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self.inside = False


def hidden_fields(html: str, action: str) -> dict[str, list[str]]:
    """The hidden fields of the page's form posting to `action`, as a browser would send them
    (httpx sends a list as the same name repeated, in order)."""
    parser = _Forms(action)
    parser.feed(html)
    assert parser.fields, f"the page has a form posting to {action}"
    out: dict[str, list[str]] = {}
    for name, value in parser.fields:
        out.setdefault(name, []).append(value)
    return out


async def sign_in(c: DealflowClient, api: httpx.AsyncClient, identity: str) -> None:
    """Sign `api` in to the pages as `identity`, with a token made for it, as a person would."""
    token, _ = await token_service.create(c, identity, created_by="olga")
    page = await api.get("/signin")
    done = await api.post("/signin", data={"csrf_token": csrf_of(page.text), "token": token, "next": "/definitions"})
    assert done.status_code == 303, done.text
