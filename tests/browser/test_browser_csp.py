"""The pages under their Content-Security-Policy in a real browser: the board's and the
dashboard's scripts (files of this server) run, the dashboard's bars are drawn, Swagger UI at
/api/docs starts (its inline script is allowed by its hash), and chromium reports no violation."""

from __future__ import annotations

from playwright.async_api import ConsoleMessage, Page, expect

from client.api import DealflowClient
from definitions.loader import PinnedDefinition
from tests.support import new_deal_id
from tests.support.web import app_over, served


async def test_the_pages_and_swagger_ui_work_under_the_csp(
    page: Page, client: DealflowClient, deployed: dict[str, PinnedDefinition]
) -> None:
    deal_id = new_deal_id("csp")
    await client.start_deal("seven-stage", deal_id, "rita", value=1000)
    violations: list[str] = []

    def watch(message: ConsoleMessage) -> None:
        if "Content Security Policy" in message.text or "Content-Security-Policy" in message.text:
            violations.append(message.text)

    page.on("console", watch)
    async with served(app_over(client, flush=0.1)) as base:
        await page.goto(f"{base}/signin?next=/board%3Fprocess%3Dseven-stage")
        await page.get_by_label("Your name").fill("rita")
        await page.get_by_role("button", name="Sign in").click()
        await expect(page.get_by_role("heading", name="Pipeline board: seven-stage")).to_be_visible()
        # board.js is a file of this server: it runs, and its first poll comes back
        async with page.expect_response(lambda r: "/board" in r.url and r.request.resource_type == "fetch"):
            pass

        await page.goto(f"{base}/dashboard?process=seven-stage")
        bar = page.locator("td.barcell rect.bar").first
        await expect(bar).to_be_attached()
        assert (await bar.bounding_box() or {"width": 0})["width"] > 1, "the bar is drawn"

        await page.goto(f"{base}/api/docs")
        await expect(page.locator(".opblock").first).to_be_visible()
        await expect(page.get_by_text("POST/api/v1/deals", exact=False).first).to_be_visible()
    assert not violations, violations
