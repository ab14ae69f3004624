"""A rep in a real browser: starts a deal from the board, completes stages through the forms built
from the definition, is refused in words for a wrong value, moves back with a reason, wins, and
loses another deal with a reason from the select once they confirm it. A refusal comes by a redirect
to the deal's page, so a reload sends nothing again. The board and the deal page pass axe."""

from __future__ import annotations

from playwright.async_api import Page, expect

from client.api import DealflowClient
from definitions.loader import PinnedDefinition
from tests.support import new_deal_id
from tests.support.browser import axe_check
from tests.support.web import app_over, served


async def _sign_in(page: Page, base: str, name: str) -> None:
    await page.goto(f"{base}/signin?next=/board%3Fprocess%3Dseven-stage")
    await page.get_by_label("Your name").fill(name)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("heading", name="Pipeline board: seven-stage")).to_be_visible()


async def _complete(page: Page, stage_title: str, **facts: str) -> None:
    form = page.locator("form", has=page.get_by_role("group", name=f"Complete “{stage_title}”"))
    for label, value in facts.items():
        field = form.get_by_label(label, exact=False)
        if await field.evaluate("e => e.tagName") == "SELECT":
            await field.select_option(value)
        else:
            await field.fill(value)
    await form.get_by_role("button", name="Complete stage").click()


async def test_a_rep_works_deals_through_the_board_and_the_deal_page(
    page: Page, client: DealflowClient, deployed: dict[str, PinnedDefinition]
) -> None:
    deal_id = new_deal_id("web")
    async with served(app_over(client, flush=0.1)) as base:
        await _sign_in(page, base, "rita")

        await page.get_by_text("Start a deal").click()
        await page.get_by_label("Deal id").fill(deal_id)
        await page.get_by_label("Value").fill("25000")
        await page.get_by_label("Customer").fill("Fjord Tools")
        await page.get_by_role("button", name="Start deal").click()
        await expect(page.get_by_role("heading", name=f"Deal {deal_id}")).to_be_visible()
        await expect(page.get_by_role("status")).to_have_text("Deal started.")

        report = await axe_check(page)
        assert not report.violations, report.message

        await _complete(page, "Prospecting", **{"What problem": "slow quoting", "Can they afford": "yes"})
        await expect(page.get_by_role("status")).to_contain_text("now at stage preparation")
        await _complete(page, "Preparation and research", **{"What are the steps": "IT review, then the CFO signs"})
        await expect(page.get_by_role("status")).to_contain_text("now at stage needs-assessment")

        # back to preparation: the select offers it, and the deal asks for a reason
        await page.get_by_label("Move to").select_option("preparation")
        await page.get_by_role("button", name="Move").click()
        await expect(page.get_by_role("alert")).to_contain_text("needs a reason: write it in “Reason for the move”")
        await expect(page.get_by_role("alert")).to_contain_text("Nothing was changed")
        assert "--reason" not in await page.get_by_role("alert").inner_text()
        # the refusal came by a redirect: the page is the deal's, and reloading it sends nothing again
        await expect(page).to_have_url(f"{base}/deals/{deal_id}")
        before = await client.logged_state(deal_id)
        await page.reload()
        await expect(page.get_by_role("heading", name=f"Deal {deal_id}")).to_be_visible()
        await expect(page.get_by_role("alert")).to_have_count(0)
        assert await client.logged_state(deal_id) == before
        await page.get_by_label("Move to").select_option("preparation")
        await page.get_by_label("Reason for the move").fill("the CFO is not the signer after all")
        await page.get_by_role("button", name="Move").click()
        await expect(page.get_by_role("status")).to_contain_text("now at stage preparation")
        await expect(page.get_by_role("cell", name="the CFO is not the signer after all", exact=False)).to_be_visible()

        await _complete(page, "Preparation and research")
        await _complete(
            page,
            "Needs assessment (discovery)",
            **{"Who can say yes": "Kari, CFO", "What budget": "40000", "In which phase": "evaluation"},
        )
        await expect(page.get_by_role("status")).to_contain_text("now at stage presentation")

        # the board shows the deal in its column, with its owner and value
        await page.get_by_role("link", name="Back to the seven-stage board").click()
        card = page.locator(f'li.card[data-deal="{deal_id}"]')
        await expect(card).to_contain_text("rita")
        await expect(card).to_contain_text("25,000")
        column = page.locator("section.column", has=card)
        await expect(column.get_by_role("heading")).to_have_text("Presentation")
        report = await axe_check(page)
        assert not report.violations, report.message
        await card.get_by_role("link").click()

        await _complete(
            page, "Presentation", **{"Which approach": "question", "What is the next logical step": "trial"}
        )
        await _complete(
            page, "Objection handling", **{"Who else is in": "Acme, slower", "What can we do": "a pilot in May"}
        )
        form = page.locator("form", has=page.get_by_role("group", name="Complete “Closing”"))
        await form.get_by_label("Which close", exact=False).select_option("urgency")
        await form.get_by_label("When was the contract signed", exact=False).fill("2026-11-30")
        await form.get_by_label("then start a follow-on deal: up-selling").check()
        await form.get_by_role("button", name="Mark won").click()
        await expect(page.get_by_role("status")).to_contain_text("now at stage follow-up")

        # a whole number is asked for: 2.5 referrals is refused, in words, and nothing changes
        await _complete(
            page,
            "Follow-up, repeat business and referrals",
            **{"Is the customer satisfied": "yes", "How many referrals": "2.5"},
        )
        await expect(page.get_by_role("alert")).to_contain_text("referrals: expected a whole number, got '2.5'")
        await expect(page.get_by_label("How many referrals", exact=False)).to_have_value("2.5")
        status = await client.status(deal_id)
        assert status.state.stage == "follow-up" and "follow-up" not in status.state.facts


async def test_a_rep_types_a_currency_into_its_widget(
    page: Page, client: DealflowClient, deployed: dict[str, PinnedDefinition]
) -> None:
    deal_id = new_deal_id("web")
    await client.start_deal("abroad", deal_id, "bob", value=900)
    async with served(app_over(client, flush=0.1)) as base:
        await page.goto(f"{base}/signin?next=/deals/{deal_id}")
        await page.get_by_label("Your name").fill("bob")
        await page.keyboard.press("Enter")
        await expect(page.get_by_role("heading", name=f"Deal {deal_id}")).to_be_visible()
        currency = page.get_by_label("Which currency will they pay in?", exact=False)
        await expect(currency).to_have_attribute("maxlength", "3")
        assert await currency.evaluate("e => e.list.options.length") > 150, "the ISO 4217 codes are suggested"
        report = await axe_check(page)
        assert not report.violations, report.message

        await _complete(page, "Qualify", **{"Which currency": "XYZ", "How many seats": "3"})
        await expect(page.get_by_role("alert")).to_contain_text(
            "currency: XYZ is not an ISO 4217 currency code (such as EUR, NOK or USD), got 'XYZ'"
        )
        await expect(currency).to_have_value("XYZ")
        await _complete(page, "Qualify", **{"Which currency": "chf", "How many seats": "3"})
        await expect(page.get_by_role("status")).to_contain_text("now at stage close")
    state = await client.logged_state(deal_id)
    assert state.facts["qualify"] == {"currency": "CHF", "seats": 3}
    await client.lose(deal_id, "no-budget", actor="bob")


async def test_a_rep_loses_a_deal_with_a_reason_from_the_select_once_confirmed(
    page: Page, client: DealflowClient, deployed: dict[str, PinnedDefinition]
) -> None:
    deal_id = new_deal_id("web")
    await client.start_deal("seven-stage", deal_id, "bob", value=900)
    async with served(app_over(client, flush=0.1)) as base:
        await page.goto(f"{base}/signin?next=/deals/{deal_id}")
        await page.get_by_label("Your name").fill("bob")
        await page.keyboard.press("Enter")
        await expect(page.get_by_role("heading", name=f"Deal {deal_id}")).to_be_visible()
        why = page.get_by_label("Why was it lost?")
        reasons = await why.locator("option").all_inner_texts()
        assert reasons == [
            "choose a reason…",
            "no-budget",
            "no-need",
            "chose-competitor",
            "no-decision",
            "timing",
            "unresponsive",
        ]
        await expect(why).to_have_value("")
        lose = page.locator("form", has=page.get_by_role("group", name="Lose the deal"))
        confirm = page.get_by_label("I confirm this deal is lost")
        # without JavaScript too: the browser asks for a reason and the tick before it sends the form
        assert await lose.evaluate("f => !f.checkValidity()")
        assert await why.evaluate("e => e.validity.valueMissing")
        await why.select_option("chose-competitor")
        await page.get_by_label("Note on the loss").fill("went with Acme")
        assert await confirm.evaluate("e => e.validity.valueMissing"), "the loss waits for its confirmation"
        assert await lose.evaluate("f => !f.checkValidity()")
        await confirm.check()
        assert await lose.evaluate("f => f.checkValidity()")
        await page.get_by_role("button", name="Mark lost").click()
        await expect(page.get_by_role("status")).to_contain_text("the deal is now lost")
        await expect(page.get_by_role("button", name="Complete stage")).to_have_count(0)
    state = await client.logged_state(deal_id)
    assert (state.status, state.lost_reason) == ("lost", "chose-competitor")


async def test_the_board_shows_new_deals_without_a_reload(
    page: Page, client: DealflowClient, deployed: dict[str, PinnedDefinition]
) -> None:
    deal_id, owner = new_deal_id("live"), new_deal_id("rep")  # an owner of its own: a short column
    async with served(app_over(client, flush=0.1)) as base:
        await page.goto(f"{base}/board?process=seven-stage&owner={owner}")
        column = page.locator("section.column", has=page.get_by_role("heading", name="Prospecting", exact=True))
        await expect(column.locator("[data-count]")).to_have_text("0")
        marker = await page.evaluate("() => { window.notReloaded = true; return true; }")
        await client.start_deal("seven-stage", deal_id, owner, value=700)
        await expect(page.locator(f'li.card[data-deal="{deal_id}"]')).to_be_visible(timeout=15_000)
        await expect(column.locator("[data-count]")).to_have_text("1")
        assert marker and await page.evaluate("() => window.notReloaded === true"), "the page was not reloaded"
