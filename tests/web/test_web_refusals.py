"""Refusals as the web says them: in the page's and the API's own words (a form field, a JSON
field, a header; never a flag of the CLI), and after a form, through post/redirect/get: the refused
post redirects to its page, which shows the refusal and what was typed once, so a reload sends
nothing again. Losing a deal takes a reason chosen and a confirmation ticked."""

from __future__ import annotations

import ast
import json
import re

import pytest
from starlette.requests import Request

from client.api import DealflowClient
from definitions.loader import PinnedDefinition
from store import event_log
from tests.support import ROOT, new_deal_id
from tests.support.web import app_over, csrf_of, http
from web import flash

# a flag as the CLI spells one: --reason, --map, --request-id (not an en dash or a CSS variable)
FLAG = re.compile(r"(?<![\w-])--[a-z][a-z-]+")
PROSPECTING = {"need": "faster quotes", "can_afford": "yes"}


def _form_of(html: str, action: str) -> dict[str, str]:
    """The hidden fields of the page's form posting to `action`."""
    form = html[html.index(f'action="{action}"') :]
    form = form[: form.index("</form>")]
    return dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', form))


async def _at_needs_assessment(client: DealflowClient) -> str:
    """A seven-stage deal two stages in: moving back from there needs a reason."""
    deal_id = new_deal_id("refuse")
    await client.start_deal("seven-stage", deal_id, "rita", value=500)
    await client.complete_stage(deal_id, "prospecting", actor="rita", facts=PROSPECTING)
    done = await client.complete_stage(deal_id, "preparation", actor="rita", facts={"buying_steps": "CFO signs"})
    await client.status(deal_id, min_seq=done.last_seq)
    return deal_id


async def test_the_api_names_its_own_field_and_no_flag(
    client: DealflowClient, deployed: dict[str, PinnedDefinition]
) -> None:
    deal_id = await _at_needs_assessment(client)
    before = await event_log.last_seq(client.pool, deal_id)
    async with http(app_over(client), **{"X-Dealflow-User": "rita"}) as api:
        back = await api.post(f"/api/v1/deals/{deal_id}/move", json={"to": "preparation"})
        crm = await api.post(
            "/api/v1/imports",
            json={"source": "hubspot", "process": "seven-stage", "files": {"deals.csv": "Deal Name\n"}},
        )
    assert (back.status_code, back.json()["code"]) == (422, "reason_required")
    assert back.json()["message"] == (
        "moving back from 'needs-assessment' needs a reason (send it in the body's `reason`)"
    )
    assert (crm.status_code, crm.json()["code"]) == (422, "invalid_request")
    assert "needs a mapping file" in crm.json()["message"] and "`map`" in crm.json()["message"]
    for answer in (back, crm):
        assert not FLAG.search(answer.text), answer.text
    assert await event_log.last_seq(client.pool, deal_id) == before, "nothing changed"


async def test_a_refused_form_redirects_to_its_page_which_shows_it_once_with_what_was_typed(
    client: DealflowClient, deployed: dict[str, PinnedDefinition]
) -> None:
    deal_id = await _at_needs_assessment(client)
    async with http(app_over(client), **{"X-Dealflow-User": "rita"}) as browser:
        page = (await browser.get(f"/deals/{deal_id}")).text
        form = _form_of(page, f"/deals/{deal_id}/move") | {"to": "preparation", "reason": "  "}
        before = await event_log.last_seq(client.pool, deal_id)

        posted = await browser.post(f"/deals/{deal_id}/move", data=form)
        assert (posted.status_code, posted.headers["location"]) == (303, f"/deals/{deal_id}")
        shown = await browser.get(posted.headers["location"])
        assert shown.status_code == 200
        assert "Refused (reason_required):" in shown.text
        assert "needs a reason: write it in “Reason for the move”" in shown.text
        assert "Nothing was changed." in shown.text
        assert not FLAG.search(shown.text), "the page names no flag of the CLI"
        assert '<option value="preparation" selected>' in shown.text, "the move chosen is kept"

        reloaded = await browser.get(posted.headers["location"])
        assert "Refused" not in reloaded.text, "a reload shows the page, and sends nothing again"
        assert await event_log.last_seq(client.pool, deal_id) == before

        # the board's form too: a deal id that exists is refused, and the form comes back filled
        board = (await browser.get("/board?process=seven-stage")).text
        start = {"csrf_token": csrf_of(board), "process": "seven-stage", "deal_id": deal_id, "customer": "Fjord"}
        again = await browser.post("/board/start", data=start | {"value": "12 000"})
        assert (again.status_code, again.headers["location"]) == (303, "/board?process=seven-stage")
        board = (await browser.get(again.headers["location"])).text
        assert "Refused (invalid_request):" in board and "Value: expected a number, got &#39;12 000&#39;" in board
        assert f'value="{deal_id}"' in board and 'value="Fjord"' in board and "<details open>" in board
        exists = await browser.post("/board/start", data=start)
        board = (await browser.get(exists.headers["location"])).text
        assert exists.status_code == 303 and "Refused (deal_exists):" in board
        assert "Refused" not in (await browser.get("/board?process=seven-stage")).text


async def test_a_loss_needs_a_reason_chosen_and_a_confirmation_and_else_changes_nothing(
    client: DealflowClient, deployed: dict[str, PinnedDefinition]
) -> None:
    deal_id = await _at_needs_assessment(client)
    async with http(app_over(client), **{"X-Dealflow-User": "rita"}) as browser:
        page = (await browser.get(f"/deals/{deal_id}")).text
        lose = page[page.index(f'action="/deals/{deal_id}/lose"') :]
        lose = lose[: lose.index("</form>")]
        assert '<select id="lost-reason" name="reason" required>' in lose
        assert '<option value="" selected>choose a reason…</option>' in lose, "no reason is preselected"
        assert '<input type="checkbox" name="confirm" value="yes" required>' in lose
        assert "I confirm this deal is lost" in lose
        form = _form_of(page, f"/deals/{deal_id}/lose")
        before = await event_log.last_seq(client.pool, deal_id)

        unconfirmed = await browser.post(
            f"/deals/{deal_id}/lose", data=form | {"reason": "timing", "note": "budget moved to 2027"}
        )
        assert unconfirmed.status_code == 303
        shown = (await browser.get(unconfirmed.headers["location"])).text
        assert "the deal was not marked lost: tick “I confirm this deal is lost”" in shown
        assert '<option value="timing" selected>' in shown and 'value="budget moved to 2027"' in shown
        assert 'name="confirm" value="yes" required>' in shown, "the confirmation is asked again, not kept"

        nothing = await browser.post(f"/deals/{deal_id}/lose", data=form | {"confirm": "yes"})
        shown = (await browser.get(nothing.headers["location"])).text
        assert "the deal was not marked lost: choose why in “Why was it lost?”" in shown
        neither = await browser.post(f"/deals/{deal_id}/lose", data=form)
        shown = (await browser.get(neither.headers["location"])).text
        assert "choose why in “Why was it lost?” and tick “I confirm this deal is lost”" in shown
        assert await event_log.last_seq(client.pool, deal_id) == before, "no refused loss changed anything"
        assert (await client.status(deal_id)).state.status == "open"

        confirmed = await browser.post(f"/deals/{deal_id}/lose", data=form | {"reason": "timing", "confirm": "yes"})
        assert confirmed.status_code == 303 and "seq=" in confirmed.headers["location"]
        assert "the deal is now lost" in (await browser.get(confirmed.headers["location"])).text
    state = await client.logged_state(deal_id)
    assert (state.status, state.lost_reason) == ("lost", "timing")


async def test_what_was_typed_that_a_cookie_cannot_hold_is_said_and_the_session_lives_on(
    client: DealflowClient, deployed: dict[str, PinnedDefinition]
) -> None:
    deal_id = await _at_needs_assessment(client)
    long_note = "ø" * 5000  # 30,000 bytes once escaped as JSON: far past a cookie's 4 KB
    async with http(app_over(client), **{"X-Dealflow-User": "rita"}) as browser:
        page = (await browser.get(f"/deals/{deal_id}")).text
        form = _form_of(page, f"/deals/{deal_id}/lose")
        posted = await browser.post(f"/deals/{deal_id}/lose", data=form | {"reason": "timing", "note": long_note})
        assert posted.status_code == 303
        assert len(posted.headers["set-cookie"]) < 4096, "a cookie the browser keeps"
        shown = (await browser.get(posted.headers["location"])).text
        assert "tick “I confirm this deal is lost”" in shown
        assert "What you typed was too long to keep here: type it again." in shown
        assert long_note not in shown
        # the same session: its CSRF token still signs the next form, which is taken
        done = await browser.post(f"/deals/{deal_id}/lose", data=form | {"reason": "timing", "confirm": "yes"})
        assert done.status_code == 303 and "seq=" in done.headers["location"]


@pytest.mark.unit
def test_the_session_keeps_a_refusal_for_its_page_once_and_only_what_fits_a_cookie() -> None:
    request = Request({"type": "http", "session": {}})
    stale = {"error": "stale stage", "error_code": "stale_stage"}
    assert flash.keep(request, "/deals/x", stale, {"reason": "r"})
    assert flash.take(request, "/deals/other") == {}, "one kept for another page is not shown there"
    assert flash.take(request, "/deals/x") == {}, "and is forgotten"

    assert flash.keep(request, "/deals/x", stale, {"reason": "r"})
    shown = flash.take(request, "/deals/x")
    assert shown == {**stale, "typed": {"reason": "r"}, "typed_dropped": False, "refused": True}
    assert flash.take(request, "/deals/x") == {}, "shown once"

    assert flash.keep(request, "/deals/x", stale, {"note": "ø" * 1000})
    assert len(json.dumps(request.session[flash.KEY])) <= flash.BUDGET
    assert flash.take(request, "/deals/x") == {**stale, "typed": {}, "typed_dropped": True, "refused": True}

    assert flash.keep(request, "/deals/x", stale, {})
    assert not flash.keep(request, "/deals/x", {"error": "why " * 1000, "error_code": "invalid_fact"}, {})
    assert flash.KEY not in request.session, "a refusal too long to keep is shown in place, and none is left"


async def test_a_refusal_too_long_for_the_cookie_is_the_posts_own_answer(
    client: DealflowClient, deployed: dict[str, PinnedDefinition]
) -> None:
    deal_id = await _at_needs_assessment(client)
    # not a number, as long as a text may be (domain.limits), and echoed in the refusal: escaped in
    # the session's JSON, more than a cookie holds
    huge = "ø" * 2000
    async with http(app_over(client), **{"X-Dealflow-User": "rita"}) as browser:
        page = (await browser.get(f"/deals/{deal_id}")).text
        form = _form_of(page, f"/deals/{deal_id}/complete") | {"fact.budget": huge, "fact.decision_maker": "CFO"}
        before = await event_log.last_seq(client.pool, deal_id)
        answer = await browser.post(f"/deals/{deal_id}/complete", data=form)
    assert answer.status_code == 422
    assert "Refused (invalid_fact):" in answer.text and "budget: expected a number" in answer.text
    assert f'value="{huge}"' in answer.text and 'value="CFO"' in answer.text, "what was typed comes back"
    assert await event_log.last_seq(client.pool, deal_id) == before


# the modules whose errors reach the pages and the API: what they say is shared with the CLI
SHARED = [*sorted((ROOT / "domain").glob("*.py")), *sorted((ROOT / "definitions").glob("*.py"))]
SHARED += [
    p
    for p in sorted((ROOT / "client").glob("*.py"))
    if p.name not in {"cli.py", "arguments.py", "output.py", "flags.py", "report.py"}
    and not p.name.endswith("_commands.py")
]
SHARED += sorted((ROOT / "store").glob("*.py")) + sorted((ROOT / "crm").glob("*.py"))
ERRORS = {"Refusal", "Refused", "NotFound", "DealflowError", "OutcomeUnknown", "Unavailable", "PlanError"}
ERRORS |= {"ExportError", "Problem", "problem", "MappingError"}  # an import's refusals, shown by every face


def _texts(node: ast.AST) -> list[str]:
    return [n.value for n in ast.walk(node) if isinstance(n, ast.Constant) and isinstance(n.value, str)]


@pytest.mark.unit
def test_no_error_the_web_can_answer_names_a_flag_of_the_cli() -> None:
    found = []
    for path in SHARED:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", None)) in ERRORS:
                found += [f"{path.relative_to(ROOT)}:{node.lineno}: {t!r}" for t in _texts(node) if FLAG.search(t)]
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "Stranded":
                found += [f"{path.relative_to(ROOT)}:{node.lineno}: {t!r}" for t in _texts(node) if FLAG.search(t)]
    assert found == [], "\n".join(found)
    assert len(SHARED) > 40, [p.name for p in SHARED]


@pytest.mark.unit
def test_the_scan_finds_a_flag_in_an_error_text() -> None:
    assert FLAG.search("skipping needs a reason (--reason)") and FLAG.search("add --map demo=STAGE")
    assert not FLAG.search("pre-sale and post-sale stages — one at a time")
    tree = ast.parse('raise Refused(f"a {x} import needs --map FILE", code="invalid_request")')
    assert [t for t in _texts(tree) if FLAG.search(t)] == [" import needs --map FILE"]
