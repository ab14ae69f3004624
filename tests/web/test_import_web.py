"""Imports over HTTP and from the definitions page: each CRM's export shape, the funnel of the
imported deals checked against a computation over the original CSV, and the import offered only
to those who may import."""

from __future__ import annotations

import uuid

from app import metrics_service
from app.metrics_service import MetricsQuery
from client.api import DealflowClient
from definitions.loader import PinnedDefinition
from tests.support import wait_for
from tests.support.web import app_over, csrf_of, http, policy, redirected

MAP = """
stages:
  Prospecting: prospecting
  Discovery: needs-assessment
  Demo: presentation
  Objections: objection-handling
  Negotiation: closing
  Closed Won: won
  Closed Lost: lost
lost_reasons:
  Price: no-budget
  "*": no-decision
owners:
  "*": sam
"""


def _salesforce(tag: str) -> tuple[str, str, dict[str, int]]:
    """Opportunities and their history, and per stage how many deals entered it (the CSV's own
    count, which the imported funnel must match)."""
    opp = ["Id,Name,StageName,Amount,OwnerId,CreatedDate,CloseDate,IsClosed,IsWon,Loss_Reason__c"]
    hist = ["OpportunityId,StageName,Amount,Probability,CloseDate,CreatedDate,CreatedById"]
    paths = {
        "won": ["Prospecting", "Discovery", "Demo", "Objections", "Negotiation", "Closed Won"],
        "lost": ["Prospecting", "Discovery", "Closed Lost"],
        "open": ["Prospecting", "Discovery", "Demo"],
    }
    entered: dict[str, int] = {}
    ours = {"Prospecting": "prospecting", "Discovery": "needs-assessment", "Demo": "presentation"}
    ours |= {"Objections": "objection-handling", "Negotiation": "closing"}
    for n in range(12):
        kind = ("won", "lost", "open")[n % 3]
        crm_id = f"{tag}{n:03d}"
        stages = paths[kind]
        last = stages[-1]
        closed = kind != "open"
        opp.append(
            f"{crm_id},Deal {n},{last},{1000 + n},005X,2026-03-01T09:00:00.000+0000,2026-06-30,"
            f"{str(closed).lower()},{str(kind == 'won').lower()},{'Price' if kind == 'lost' else ''}"
        )
        for day, stage in enumerate(stages, start=1):
            hist.append(f"{crm_id},{stage},{1000 + n},50,2026-06-30,2026-03-{day:02d}T10:00:00.000+0000,005X")
            if stage in ours:
                entered[ours[stage]] = entered.get(ours[stage], 0) + 1
    return "\n".join(opp) + "\n", "\n".join(hist) + "\n", entered


async def test_a_salesforce_export_over_the_api_and_its_funnel(
    client: DealflowClient, deployed: dict[str, PinnedDefinition]
) -> None:
    tag = uuid.uuid4().hex[:6]
    opportunities, history, entered = _salesforce(tag)
    body = {
        "source": "salesforce",
        "process": "seven-stage",
        "files": {"Opportunity.csv": opportunities, "OpportunityHistory.csv": history},
        "map": MAP,
    }
    async with http(app_over(client)) as api:
        dry = (await api.post("/api/v1/imports", json=body)).json()
        assert dry["dry_run"] and dry["starts_per_stage"] == {"presentation": 4}
        assert dry["closed"] == {"won": 4, "lost": 4} and dry["problems"] == []
        done = await api.post("/api/v1/imports", json=body | {"dry_run": False})
        assert done.status_code == 200, done.text
        assert (done.json()["started"], done.json()["recorded"]) == (4, 8)
        unmapped = await api.post(
            "/api/v1/imports", json=body | {"dry_run": False, "map": "stages: {Prospecting: prospecting}\n"}
        )
        assert (unmapped.status_code, unmapped.json()["code"]) == (422, "invalid_mapping")
        assert "CRM stage 'Discovery' is not mapped (used by 12 deals)" in unmapped.json()["message"]
    [(_, m)] = await metrics_service.metrics(client, MetricsQuery(process="seven-stage", owner="sam"))
    imported = {s.stage: s.entered for s in m.stages if s.entered}
    for stage, n in entered.items():
        assert imported.get(stage, 0) >= n, (stage, imported)
    lost = next(s for s in m.stages if s.stage == "needs-assessment")
    assert lost.lost_reasons.get("no-budget", 0) >= 4


async def test_hubspot_and_pipedrive_exports_over_the_api(
    client: DealflowClient, deployed: dict[str, PinnedDefinition]
) -> None:
    tag = uuid.uuid4().hex[:6]
    hubspot = (
        "Record ID,Deal Name,Deal Stage,Pipeline,Deal owner,Amount,Create Date,Close Date,Closed Lost Reason,"
        '"Date entered ""Demo (Sales)""","Date exited ""Demo (Sales)"""\n'
        f"{tag}1,A,Demo,Sales,Kim,100,2026-04-01 09:00,,,2026-04-02 09:00,\n"
        f"{tag}2,B,Closed Lost,Sales,Kim,100,2026-04-01 09:00,2026-04-09 09:00,Price,"
        "2026-04-02 09:00,2026-04-09 09:00\n"
    )
    pipedrive = (
        "Deal - ID,Deal - Title,Deal - Stage,Deal - Status,Deal - Deal created,Deal - Won time,Deal - Lost time,"
        "Deal - Lost reason,Deal - Owner,Deal - Value\n"
        f"{tag}3,C,Demo,open,2026-04-01 09:00:00,,,,Kim,50\n"
        f"{tag}4,D,Negotiation,won,2026-04-01 09:00:00,2026-04-20 09:00:00,,,Kim,70\n"
    )
    async with http(app_over(client)) as api:
        hs = await api.post(
            "/api/v1/imports",
            json={"source": "hubspot", "process": "seven-stage", "files": {"deals.csv": hubspot}, "map": MAP}
            | {"pipeline": "Sales", "dry_run": False},
        )
        pd = await api.post(
            "/api/v1/imports",
            json={"source": "pipedrive", "process": "seven-stage", "files": {"deals.csv": pipedrive}, "map": MAP}
            | {"dry_run": False},
        )
    assert hs.status_code == 200 and (hs.json()["started"], hs.json()["closed"]) == (1, {"lost": 1}), hs.text
    assert pd.status_code == 200 and (pd.json()["started"], pd.json()["closed"]) == (1, {"won": 1}), pd.text
    state = await client.logged_state(f"hubspot-{tag}1")
    assert (state.stage, state.owner) == ("presentation", "sam")


async def test_the_definitions_page_imports_for_ops_only(
    client: DealflowClient, deployed: dict[str, PinnedDefinition]
) -> None:
    from app import token_service

    tag = uuid.uuid4().hex[:6]
    export = f"deal_id,stage,entered_at,owner\n{tag},prospecting,2026-05-01T09:00:00Z,rita\n"
    app = app_over(client, policy())
    scoped = DealflowClient(client.temporal, client.pool, client.settings, policy())
    sessions = {}
    for name in ("olga", "rita"):
        token, _ = await token_service.create(scoped, name, created_by="olga")
        browser = http(app)
        form = await browser.get("/signin")
        await browser.post("/signin", data={"csrf_token": csrf_of(form.text), "token": token, "next": "/definitions"})
        sessions[name] = browser
    try:
        ops_page = (await sessions["olga"].get("/definitions")).text
        assert "Import deals from a CRM" in ops_page
        assert "Import deals from a CRM" not in (await sessions["rita"].get("/definitions")).text
        fields = {"csrf_token": csrf_of(ops_page), "source": "csv", "process": "seven-stage", "dry_run": "1"}
        files = {"files": ("changes.csv", export.encode(), "text/csv")}
        preview = await sessions["olga"].post("/imports", data=fields, files=files)
        assert preview.status_code == 200 and "Import preview" in preview.text and "prospecting" in preview.text
        refused = await sessions["rita"].post(
            "/imports",
            data=fields | {"csrf_token": csrf_of((await sessions["rita"].get("/definitions")).text)},
            files=files,
        )
        shown = await redirected(sessions["rita"], refused, "/definitions")
        assert "Refused (forbidden)" in shown.text and "not import" in shown.text
    finally:
        for browser in sessions.values():
            await browser.aclose()


async def test_the_import_form_offers_what_open_deals_send_and_the_import_keeps_the_choice(
    client: DealflowClient, deployed: dict[str, PinnedDefinition]
) -> None:
    from app import token_service

    tag = uuid.uuid4().hex[:6]
    export = f"deal_id,stage,entered_at,owner\n{tag},objection-handling,2026-01-05T09:00:00Z,rita\n"
    app = app_over(client, policy())
    scoped = DealflowClient(client.temporal, client.pool, client.settings, policy())
    token, _ = await token_service.create(scoped, "olga", created_by="olga")
    async with http(app) as browser:
        form = await browser.get("/signin")
        await browser.post("/signin", data={"csrf_token": csrf_of(form.text), "token": token, "next": "/definitions"})
        page = (await browser.get("/definitions")).text
        assert 'name="effects" value="future" checked' in page, "future is the default"
        assert "no buyer hears anything until a rep moves the deal on" in page
        assert 'value="none"' in page and 'value="all"' in page and "Everything at once" in page
        fields = {"csrf_token": csrf_of(page), "source": "csv", "process": "seven-stage"}

        def files() -> dict[str, tuple[str, bytes, str]]:
            return {"files": ("changes.csv", export.encode(), "text/csv")}

        preview = await browser.post("/imports", data=fields | {"dry_run": "1"}, files=files())
        assert "Effects <strong>future</strong>" in preview.text and "0 buyer cadence(s) started" in preview.text
        everything = await browser.post("/imports", data=fields | {"dry_run": "1", "effects": "all"}, files=files())
        assert "Effects <strong>all</strong>" in everything.text and "1 buyer cadence(s) started" in everything.text
        bogus = await browser.post("/imports", data=fields | {"effects": "loud"}, files=files())
        shown = await redirected(browser, bogus, "/definitions")
        assert "effects &#39;loud&#39;: expected one of none, future, all" in shown.text, shown.text
        assert not await client.pool.fetchval("SELECT count(*) FROM deals WHERE deal_id = $1", f"csv-{tag}")
        done = await browser.post("/imports", data=fields | {"effects": "all"}, files=files())
        assert "Started 1 open deal(s)" in done.text, done.text

    async def cadence() -> bool:
        return any(e.type == "CadenceStarted" for e in await client.events(f"csv-{tag}"))

    await wait_for(cadence, timeout=30)


async def test_a_semicolon_windows_1252_export_over_the_api_and_the_page(
    client: DealflowClient, deployed: dict[str, PinnedDefinition]
) -> None:
    """The API and the page read the exports the CLI reads with --delimiter and --encoding; a
    refusal names the option in each face's own words."""
    from app import token_service

    tag = uuid.uuid4().hex[:6]
    text = "ID;Title;Stage;Status;Deal created;Won time;Lost time;Lost reason;Owner;Value\n"
    text += f"{tag};Café Ørsted;Presentation;open;2026-01-01 10:00:00;;;;Rita;100\n"
    mapping = "stages: {Presentation: presentation}\n"
    body = {"source": "pipedrive", "process": "seven-stage", "files": {"deals.csv": text}, "map": mapping}
    app = app_over(client, policy())
    scoped = DealflowClient(client.temporal, client.pool, client.settings, policy())
    token, _ = await token_service.create(scoped, "olga", created_by="olga")
    async with http(app) as api:
        api.headers["Authorization"] = f"Bearer {token}"
        unhinted = await api.post("/api/v1/imports", json=body)
        assert (unhinted.status_code, unhinted.json()["code"]) == (422, "invalid_export"), unhinted.text
        said = unhinted.json()["message"]
        assert "looks separated by ';'" in said and "the body's `delimiter`" in said and "--" not in said, said
        read = await api.post("/api/v1/imports", json=body | {"delimiter": ";"})
        assert read.status_code == 200 and read.json()["starts_per_stage"] == {"presentation": 1}, read.text
        too_long = await api.post("/api/v1/imports", json=body | {"delimiter": ";;"})
        assert too_long.status_code == 422 and "delimiter" in too_long.text

    async with http(app) as browser:
        form = await browser.get("/signin")
        await browser.post("/signin", data={"csrf_token": csrf_of(form.text), "token": token, "next": "/definitions"})
        page = (await browser.get("/definitions")).text
        assert "Cells separated by" in page and 'value="cp1252"' in page
        fields = {"csrf_token": csrf_of(page), "source": "pipedrive", "process": "seven-stage", "dry_run": "1"}

        def files() -> dict[str, tuple[str, bytes, str]]:
            return {
                "files": ("deals.csv", text.encode("cp1252"), "text/csv"),
                "map": ("map.yaml", mapping.encode(), "text/yaml"),
            }

        undecoded = await browser.post("/imports", data=fields | {"delimiter": "semicolon"}, files=files())
        shown = await redirected(browser, undecoded, "/definitions")
        assert "is not utf-8-sig text" in shown.text and "choose it in “Text encoding”" in shown.text, shown.text
        assert "--encoding" not in shown.text
        preview = await browser.post(
            "/imports", data=fields | {"delimiter": "semicolon", "encoding": "cp1252"}, files=files()
        )
        assert preview.status_code == 200 and "Import preview" in preview.text, preview.text
        assert "presentation" in preview.text
        odd = await browser.post("/imports", data=fields | {"delimiter": "x"}, files=files())
        shown = await redirected(browser, odd, "/definitions")
        assert "cells separated by &#39;x&#39;" in shown.text and "“Cells separated by”" in shown.text, shown.text
    assert not await client.pool.fetchval("SELECT count(*) FROM deals WHERE deal_id = $1", f"pipedrive-{tag}")
