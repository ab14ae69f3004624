"""The pages on a 390 x 844 phone: the board, a deal with facts, a timeline and tables, and the
dashboard with its funnel, its versions and a comparison all fit the screen's width. What is wider
than the screen (a table, the board's columns) scrolls inside its own box, never the whole page."""

from __future__ import annotations

from playwright.async_api import Page, ViewportSize, expect

from app import definition_service
from client.api import DealflowClient
from definitions.loader import PinnedDefinition
from tests.support import new_deal_id
from tests.support.browser import axe_check
from tests.support.ops import orders, process_name, quick
from tests.support.web import app_over, served

PHONE: ViewportSize = {"width": 390, "height": 844}

# the elements that stick out past the screen's right edge and are not inside a box of their own
# that scrolls: what makes the page scroll sideways, named for the failure message
STICKING_OUT = """() => {
  const scrolls = e => { for (let p = e.parentElement; p; p = p.parentElement) {
    if (p === document.body) return false;
    const s = getComputedStyle(p).overflowX;
    if (s === "auto" || s === "scroll" || s === "hidden") return true;
  } return false; };
  return [...document.querySelectorAll("body *")]
    .filter(e => e.getBoundingClientRect().right > window.innerWidth + 0.5 && !scrolls(e))
    .slice(0, 8)
    .map(e => `${e.tagName.toLowerCase()}${e.id ? "#" + e.id : ""}${e.className ? "." + e.className : ""}`
      + ` (right edge ${Math.round(e.getBoundingClientRect().right)} px)`);
}"""


async def assert_fits_the_screen(page: Page) -> None:
    """No horizontal scroll: the document is no wider than the window."""
    width, inner = await page.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")
    assert inner == PHONE["width"]
    if width > inner:
        culprits = await page.evaluate(STICKING_OUT)
        raise AssertionError(f"{page.url} is {width} px wide on a {inner} px screen; sticking out: {culprits}")


async def _realistic_deal(client: DealflowClient) -> str:
    """A seven-stage deal three stages in, moved back once, with a buyer's answer: facts of several
    stages, a long timeline whose rows carry long texts, and a long deal id."""
    deal_id = new_deal_id("northwind-traders-nordics-expansion")
    await client.start_deal(
        "seven-stage", deal_id, "rita", value=1_250_000, fields={"customer": "Northwind Traders Nordics AS"}
    )
    await client.complete_stage(
        deal_id,
        "prospecting",
        actor="rita",
        facts={
            "need": "quotes take two weeks and lose them the tender; they want same-day quotes",
            "can_afford": "yes",
        },
    )
    await client.complete_stage(
        deal_id, "preparation", actor="rita", facts={"buying_steps": "IT security review, then the CFO signs"}
    )
    await client.move(
        deal_id, "prospecting", actor="rita", reason="the budget holder changed after the reorganisation in March"
    )
    await client.complete_stage(
        deal_id,
        "prospecting",
        actor="rita",
        facts={"need": "quotes take two weeks; the new CFO wants them in a day", "can_afford": "yes"},
    )
    last = await client.record_response(
        deal_id, actor="rita", kind="meeting_booked", note="demo with procurement.lead@northwind.example on Tuesday"
    )
    await client.status(deal_id, min_seq=last.last_seq)
    return deal_id


async def _two_versions_with_deals(client: DealflowClient) -> tuple[str, str, str]:
    name = process_name("mobile")
    v1 = definition_service.load_upload("orders.yaml", orders(1, name))
    await client.deploy_pinned(v1, deployed_by="tests", source="orders.yaml")
    for i in range(3):
        deal_id = new_deal_id("mobile")
        await client.start_deal(name, deal_id, "mona", value=1000 * (i + 1))
        if i:
            last = await client.complete_stage(deal_id, "lead", actor="mona")
    v2 = definition_service.load_upload("orders.yaml", orders(2, name))
    await client.deploy_pinned(v2, deployed_by="tests", source="orders.yaml")
    await client.start_deal(name, new_deal_id("mobile"), "mona", value=2000)
    await client.status(deal_id, min_seq=last.last_seq)
    return name, v1.version, v2.version


async def test_the_board_the_deal_page_and_the_dashboard_fit_a_phone(
    page: Page, client: DealflowClient, deployed: dict[str, PinnedDefinition]
) -> None:
    client = quick(client)
    deal_id = await _realistic_deal(client)
    name, v1, v2 = await _two_versions_with_deals(client)
    await page.set_viewport_size(PHONE)
    async with served(app_over(client)) as base:
        await page.goto(f"{base}/board?process=seven-stage")
        await expect(page.locator(f'li.card[data-deal="{deal_id}"]')).to_be_visible()
        await assert_fits_the_screen(page)
        board = page.locator(".board")
        assert await board.evaluate("e => e.scrollWidth > e.clientWidth"), "the columns scroll inside the board"

        await page.goto(f"{base}/deals/{deal_id}")
        await expect(page.get_by_role("heading", name=f"Deal {deal_id}")).to_be_visible()
        await expect(page.get_by_role("cell", name="the budget holder changed", exact=False)).to_be_attached()
        await expect(
            page.get_by_role("cell", name="IT security review, then the CFO signs", exact=True)
        ).to_be_visible()
        await assert_fits_the_screen(page)
        timeline = page.get_by_role("region", name="Timeline")
        assert await timeline.evaluate("e => e.scrollWidth > e.clientWidth"), "the timeline scrolls in its own box"
        report = await axe_check(page)
        assert not report.violations, report.message

        await page.goto(f"{base}/dashboard?process={name}&a={v1}&b={v2}")
        await expect(page.locator("table.funnel").get_by_role("row")).to_have_count(1 + 5)
        await expect(page.get_by_role("heading", name=f"{name}@{v1} against {name}@{v2}")).to_be_visible()
        await assert_fits_the_screen(page)
        report = await axe_check(page)
        assert not report.violations, report.message
