"""The ops, dashboard and audit pages in a browser, as the people they are for use them: ops
deploy a new version from a file and migrate a running deal onto it; a manager signs in and reads
the funnels and a comparison's verdict; an auditor reads a deal's timeline and sees verify name a
row of the log that was tampered with. Forms are sent from the keyboard where a person would."""

from __future__ import annotations

from pathlib import Path

from playwright.async_api import Page, expect

from app import definition_service, token_service
from client.api import DealflowClient
from definitions.loader import PinnedDefinition
from tests.support import SEVEN_FACTS, new_deal_id
from tests.support.browser import axe_check
from tests.support.ops import orders, process_name, quick
from tests.support.web import app_over, policy, served


async def _deploy(client: DealflowClient, text: str) -> PinnedDefinition:
    pinned = definition_service.load_upload("orders.yaml", text)
    await client.deploy_pinned(pinned, deployed_by="tests", source="orders.yaml")
    return pinned


async def _sign_in(page: Page, base: str, client: DealflowClient, identity: str) -> None:
    """Through the sign-in page, typing the token and pressing Enter."""
    token, _ = await token_service.create(client, identity, created_by="olga")
    await page.goto(f"{base}/signin")
    await page.get_by_label("API token").fill(token)
    await page.get_by_label("API token").press("Enter")
    await expect(page.get_by_text(f"Signed in as {identity}")).to_be_visible()


async def test_ops_deploy_a_version_from_a_file_and_migrate_a_running_deal(
    client: DealflowClient, page: Page, tmp_path: Path
) -> None:
    client = quick(client)
    name = process_name("browser")
    v1 = await _deploy(client, orders(1, name))
    deal_id = new_deal_id("browser")
    started = await client.start_deal(name, deal_id, "rita")
    await client.status(deal_id, min_seq=1)  # a migration plan reads where deals are from the log
    assert started.process_ref == f"{name}@{v1.version}"
    (tmp_path / "orders.yaml").write_text(orders(2, name), encoding="utf-8")

    async with served(app_over(client)) as base:
        await page.goto(f"{base}/definitions")
        await page.get_by_label("Definition file (.yaml or .yml)").set_input_files(tmp_path / "orders.yaml")
        check = page.get_by_role("button", name="Check and preview")
        await check.focus()
        await check.press("Enter")

        await expect(page.get_by_role("heading", name="Deploy orders.yaml?")).to_be_visible()
        await expect(page.get_by_text("Nothing has been deployed yet")).to_be_visible()
        await expect(page.get_by_text("stage discovery renamed to qualify-need")).to_be_visible()
        await page.get_by_role("button", name=f"Deploy {name}@").click()

        await expect(page.get_by_role("status")).to_contain_text(f"Deployed {name}@")
        v2 = await client.definition(name)
        assert v2.version != v1.version
        await expect(page.get_by_label("Deals now on version")).to_have_value(v1.version)
        await expect(page.get_by_label("Move them to version")).to_have_value(v2.version)
        await page.get_by_role("button", name="Preview the migration").click()

        await expect(page.get_by_role("cell", name=deal_id)).to_be_visible()
        await page.get_by_role("button", name="Apply: move 1 deal").click()
        await expect(page.get_by_role("status")).to_contain_text("Migration applied: 1 of 1 deal moved")
        await page.get_by_role("link", name=deal_id).click()

        await expect(page.get_by_role("heading", name=f"Deal {deal_id}")).to_be_visible()
        await expect(page.get_by_role("link", name=f"{name}@{v2.version}")).to_be_visible()
    assert (await client.logged_state(deal_id)).version == v2.version


async def test_a_manager_reads_the_funnels_and_a_comparison(client: DealflowClient, page: Page) -> None:
    client = quick(client)
    name = process_name("dash")
    v1 = await _deploy(client, orders(1, name))
    for i in range(3):
        deal_id = new_deal_id("dash")
        await client.start_deal(name, deal_id, "mona", value=1000)
        if i:
            last = await client.complete_stage(deal_id, "lead", actor="mona")
    v2 = await _deploy(client, orders(2, name))
    await client.start_deal(name, new_deal_id("dash"), "mona", value=2000)
    await client.status(deal_id, min_seq=last.last_seq)

    async with served(app_over(client, policy())) as base:
        await _sign_in(page, base, client, "mona")
        await page.goto(f"{base}/dashboard?process={name}")
        funnel = page.locator("table.funnel")
        await expect(funnel.get_by_role("row")).to_have_count(1 + 5)  # the header, and a row per stage of v2
        await expect(funnel.get_by_role("rowheader", name="qualify-need")).to_be_visible()

        owner = page.get_by_label("Owner")
        await owner.fill("mona")
        await owner.press("Enter")
        await expect(page).to_have_url(f"{base}/dashboard?process={name}&version=&owner=mona&since=&until=&as_of=")
        await expect(page.get_by_text("4 deals", exact=False).first).to_be_visible()

        await page.get_by_label("Compare version").select_option(v1.version)
        await page.get_by_label("with version").select_option(v2.version)
        await page.get_by_role("button", name="Compare", exact=True).click()
        await expect(
            page.get_by_role("heading", name=f"{name}@{v1.version} against {name}@{v2.version}")
        ).to_be_visible()
        await expect(page.get_by_text("Overall:")).to_contain_text("not enough deals")

        report = await axe_check(page)
        assert not report.violations, report.message


async def test_an_auditor_sees_verify_name_a_tampered_row(
    client: DealflowClient, deployed: dict[str, PinnedDefinition], page: Page
) -> None:
    client = quick(client)
    deal_id = new_deal_id("tamper")
    await client.start_deal("seven-stage", deal_id, "rita", fields={"customer": "Acme"})
    done = await client.complete_stage(deal_id, "prospecting", actor="rita", facts=SEVEN_FACTS["prospecting"])
    await client.status(deal_id, min_seq=done.last_seq)

    async with served(app_over(client, policy())) as base:
        await _sign_in(page, base, client, "ada")
        await page.goto(f"{base}/audit")
        field = page.get_by_label("Deal id")
        await field.fill(deal_id)
        await field.press("Enter")

        timeline = page.locator("table.timeline")
        await expect(timeline.get_by_role("cell", name="complete", exact=False).first).to_be_visible()
        await expect(timeline.get_by_role("cell", name="rita").first).to_be_visible()
        await expect(page.get_by_role("status")).to_contain_text("OK")
        async with page.expect_download() as bundle:  # the session's cookie signs the API's GET in
            await page.get_by_role("link", name="Download the audit bundle (JSON)").click()
        assert (await bundle.value).suggested_filename == f"deal-{deal_id}-audit.json"

        async with client.pool.acquire() as conn:
            # as an attacker with the database's superuser would: past the append-only triggers
            await conn.execute("SET session_replication_role = replica")
            await conn.execute(
                "UPDATE deal_events SET payload = jsonb_set(payload, '{owner}', '\"mallory\"')"
                " WHERE deal_id = $1 AND seq = 1",
                deal_id,
            )
            await conn.execute("RESET session_replication_role")
        await page.reload()

        alert = page.get_by_role("alert")
        await expect(alert).to_contain_text("MISMATCH")
        await expect(alert).to_contain_text("seq 1: content does not match its hash (altered)")
