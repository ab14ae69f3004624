"""The ops, dashboard and audit pages over HTTP: a deploy previewed then deployed, a migration
planned then applied, the refusals (a bad file, a missing CSRF token, a role without the
permission) changing nothing, and markup in definitions and deals shown as text."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import httpx

from app import audit_service, experiment_service
from client.api import DealflowClient
from definitions.loader import PinnedDefinition
from store import event_log, registry
from tests.support import SEVEN_FACTS, new_deal_id
from tests.support.ops import HOSTILE, hidden_fields, orders, process_name, quick, sign_in
from tests.support.web import app_over, csrf_of, http, policy, redirected


def _soon() -> str:
    """A datetime-local value a second from now: the input holds whole seconds, and the deal
    started within this one."""
    return (datetime.now(UTC) + timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%S")


async def _preview(api: httpx.AsyncClient, filename: str, text: str, **templates: str) -> httpx.Response:
    csrf = csrf_of((await api.get("/definitions")).text)
    files = [("definition", (filename, text.encode(), "application/yaml"))]
    files += [("templates", (name, body.encode(), "text/markdown")) for name, body in templates.items()]
    return await api.post("/definitions/preview", data={"csrf_token": csrf}, files=files)


async def _deploy(api: httpx.AsyncClient, filename: str, text: str, **templates: str) -> httpx.Response:
    preview = await _preview(api, filename, text, **templates)
    assert preview.status_code == 200, preview.text
    return await api.post("/definitions/deploy", data=hidden_fields(preview.text, "/definitions/deploy"))


async def test_every_page_renders(client: DealflowClient, deployed: dict[str, PinnedDefinition]) -> None:
    deal_id = new_deal_id("pages")
    await client.start_deal("seven-stage", deal_id, "rita", value=500)
    seven = deployed["seven-stage"]
    async with http(app_over(client)) as api:
        listing = await api.get("/definitions")
        assert listing.status_code == 200
        assert f'href="/definitions/seven-stage?version={seven.version}"' in listing.text
        assert "Deploy a definition" in listing.text and 'type="file"' in listing.text
        assert "Start an experiment" in listing.text

        one = await api.get("/definitions/seven-stage", params={"version": seven.version})
        assert one.status_code == 200
        for text in [
            "Prospecting",
            "What problem does the prospect need solved?",
            "can_afford: boolean",
            "no-budget",
            "Follow-up cadences",
        ]:
            assert text in one.text, text

        missing = await api.get("/definitions/no-such-process")
        assert missing.status_code == 404 and "no-such-process" in missing.text

        dashboard = await api.get("/dashboard", params={"process": "seven-stage"})
        assert dashboard.status_code == 200
        assert 'class="funnel"' in dashboard.text and "prospecting" in dashboard.text
        assert "win rate" in dashboard.text and "weighted pipeline" in dashboard.text

        audit = await api.get("/audit")
        assert audit.status_code == 200 and 'name="deal"' in audit.text
        audited = await api.get("/audit", params={"deal": deal_id, "at": _soon()})
        assert audited.status_code == 200, audited.text
        assert "DealStarted" in audited.text or "started" in audited.text
        assert "<strong>OK</strong>" in audited.text
        assert "read as UTC: no time zone was given" in audited.text
        assert f"/api/v1/audit/deals/{deal_id}/export" in audited.text

        unknown = await api.get("/audit", params={"deal": "no-such-deal"})
        assert unknown.status_code == 404 and "no-such-deal" in unknown.text and 'name="deal"' in unknown.text


async def test_an_upload_is_previewed_then_deployed_exactly(
    client: DealflowClient, deployed: dict[str, PinnedDefinition]
) -> None:
    name = process_name("upload")
    v1 = orders(1, name)
    async with http(app_over(client)) as api:
        preview = await _preview(api, "orders.yaml", v1)
        assert preview.status_code == 200, preview.text
        assert "first version" in preview.text and "Nothing has been deployed yet" in preview.text
        assert not [d for d in await registry.list_all(client.pool) if d.name == name], "a preview deploys nothing"

        fields = hidden_fields(preview.text, "/definitions/deploy")
        done = await api.post("/definitions/deploy", data=fields)
        assert done.status_code == 303, done.text
        assert done.headers["location"].startswith(f"/definitions/{name}?version=")
        shown = await api.get(done.headers["location"])
        assert "Deployed " in shown.text and "latest" in shown.text
        first = [d for d in await registry.list_all(client.pool) if d.name == name]
        assert len(first) == 1 and first[0].deployed_by == "local"

        # the second version, with a proposal template sent beside it
        v2 = orders(2, name) + "proposal_templates:\n  - {id: offer, file: offer.md}\n"
        second = await _preview(api, "orders.yaml", v2, **{"offer.md": "Dear {customer},\r\nour offer.\r\n"})
        assert second.status_code == 200, second.text
        assert "becomes the <strong>latest version</strong>" in second.text
        assert "renamed" in second.text and "qualify-need" in second.text, "the changes are said in words"
        # what comes back must be what was previewed: another file is refused
        fields = hidden_fields(second.text, "/definitions/deploy")
        tampered = fields | {"yaml": [base64.b64encode(orders(1, name).encode()).decode()]}
        stale = await redirected(api, await api.post("/definitions/deploy", data=tampered), "/definitions")
        assert "Refused (preview_stale)" in stale.text and "preview it again" in stale.text
        assert "Refused" not in (await api.get("/definitions")).text, "shown once: a reload sends nothing again"
        deployed_now = await api.post("/definitions/deploy", data=fields)
        assert deployed_now.status_code == 303, deployed_now.text
    versions = [d for d in await registry.list_all(client.pool) if d.name == name]
    assert len(versions) == 2
    latest = await registry.get(client.pool, name)
    # read as a file on disk is (`dealflow definitions deploy`): line ends become \n
    assert latest.templates == {"offer": "Dear {customer},\nour offer.\n"}
    assert f"version={latest.version}" in deployed_now.headers["location"]


async def test_the_preview_tells_the_warnings(client: DealflowClient) -> None:
    name = process_name("niger")
    text = orders(1, name) + "timezone: Europe/Amsterdam\nholidays: {country: NE}\n"
    async with http(app_over(client)) as api:
        preview = await _preview(api, "niger.yaml", text)
    assert preview.status_code == 200, preview.text
    assert "Deploying it is allowed, but check this:" in preview.text
    said = "holidays.country: country &#39;NE&#39; (Niger) is not a country of the process&#39;s time zone"
    assert said in preview.text


async def test_an_invalid_upload_lists_every_problem_with_its_line_and_deploys_nothing(client: DealflowClient) -> None:
    name = process_name("broken")
    broken = (
        orders(1, name).replace("probability: 0.2", "probability: 2").replace("probability: 0.4", "probability: -0.4")
    )
    async with http(app_over(client)) as api:
        answer = await redirected(api, await _preview(api, "broken.yaml", broken), "/definitions")
        assert "Nothing was changed" in answer.text and "invalid_definition" in answer.text
        assert "broken.yaml:13: stages[1].probability" in answer.text
        assert "broken.yaml:16: stages[2].probability: Input should be greater than or equal to 0" in answer.text
        not_yaml = await redirected(api, await _preview(api, "notes.txt", "name: x"), "/definitions")
        assert "a definition is a .yaml or .yml file" in not_yaml.text
        nothing = await api.post(
            "/definitions/preview", data={"csrf_token": csrf_of((await api.get("/definitions")).text)}, files=[]
        )
        assert "choose a definition file" in (await redirected(api, nothing, "/definitions")).text

        # problems too many for the session's cookie: the post's own answer lists them all
        extra = "".join(f"  - {{id: extra-{i}, title: Extra {i}, phase: win, probability: 5}}\n" for i in range(40))
        many = orders(1, name).replace("stages:\n", "stages:\n" + extra, 1)
        listed = await _preview(api, "many.yaml", many)
        assert listed.status_code == 422 and listed.text.count("many.yaml:") == 40, listed.text[-3000:]
    assert not [d for d in await registry.list_all(client.pool) if d.name == name]


async def _deal_at_demo(client: DealflowClient, process: str) -> str:
    deal_id = new_deal_id("mig")
    await client.start_deal(process, deal_id, "rita")
    await client.complete_stage(deal_id, "lead", actor="rita")
    done = await client.complete_stage(deal_id, "discovery", actor="rita", facts={"need": "faster quotes"})
    assert done.stage == "demo"
    await client.status(deal_id, min_seq=done.last_seq)  # a plan reads where deals are from the log
    return deal_id


async def test_a_migration_is_planned_then_applied(client: DealflowClient) -> None:
    name = process_name("migrate")
    client = quick(client)
    async with http(app_over(client)) as api:
        assert (await _deploy(api, "orders.yaml", orders(1, name))).status_code == 303
        v1 = (await registry.get(client.pool, name)).version
        at_lead, at_demo = new_deal_id("mig"), await _deal_at_demo(client, name)
        await client.start_deal(name, at_lead, "rita")
        assert (await _deploy(api, "orders.yaml", orders(2, name))).status_code == 303
        v2 = (await registry.get(client.pool, name)).version

        page = await api.get(f"/definitions/{name}", params={"version": v1})
        assert "Migrate running deals" in page.text
        form = {"csrf_token": csrf_of(page.text), "from_version": v1, "to_version": v2, "stage_map": ""}
        stranded = await api.post(f"/definitions/{name}/migration", data=form)
        assert stranded.status_code == 200
        assert "This plan cannot be applied" in stranded.text
        assert f"stage demo is not in {name}@{v2}; map demo to one of its stages" in stranded.text
        assert "--map" not in stranded.text, "the page names no flag of the CLI"
        assert "/migration/apply" not in stranded.text, "no Apply button for a plan that strands a deal"

        # a plan that strands a deal is refused whole, whatever posts it
        forced = await redirected(
            api, await api.post(f"/definitions/{name}/migration/apply", data=form), f"/definitions/{name}"
        )
        assert "stranded_deals" in forced.text
        assert f"would leave deals on stages {name}@{v2} does not have: {at_demo} at demo" in forced.text
        assert (await client.logged_state(at_lead)).version == v1, "nothing was sent"

        wrong = await api.post(f"/definitions/{name}/migration", data=form | {"stage_map": "demo solution"})
        wrong = await redirected(api, wrong, f"/definitions/{name}")
        assert "stage map line 1: expected OLD=NEW" in wrong.text
        assert "demo solution" in wrong.text, "the values typed come back"

        planned = await api.post(f"/definitions/{name}/migration", data=form | {"stage_map": "demo=solution\n"})
        assert planned.status_code == 200, planned.text
        assert at_demo in planned.text and at_lead in planned.text and "Apply: move 2 deals" in planned.text
        assert await event_log.last_seq(client.pool, at_demo) == (await client.logged_state(at_demo)).last_seq

        applied = await api.post(
            f"/definitions/{name}/migration/apply",
            data=hidden_fields(planned.text, f"/definitions/{name}/migration/apply"),
        )
        assert applied.status_code == 200, applied.text
        assert "Migration applied: 2 of 2 deals moved" in applied.text
        assert "now at stage solution" in applied.text
    moved = await client.logged_state(at_demo)
    assert (moved.version, moved.stage) == (v2, "solution")
    assert (await client.logged_state(at_lead)).version == v2


async def test_a_post_without_the_csrf_token_is_refused_and_changes_nothing(
    client: DealflowClient, deployed: dict[str, PinnedDefinition]
) -> None:
    name = process_name("csrf")
    async with http(app_over(client)) as api:
        preview = await _preview(api, "orders.yaml", orders(1, name))
        fields = hidden_fields(preview.text, "/definitions/deploy")
        del fields["csrf_token"]
        deploy = await api.post("/definitions/deploy", data=fields)
        assert deploy.status_code == 403 and "CSRF" in deploy.text
        forged = await api.post("/definitions/deploy", data=fields | {"csrf_token": ["forged"]})
        assert forged.status_code == 403
        start = await api.post("/experiments", data={"yaml": f"experiment: {name}\nprocess: seven-stage\n"})
        assert start.status_code == 403
        seven = deployed["seven-stage"].version
        migrate = await api.post(
            "/definitions/seven-stage/migration/apply", data={"from_version": seven, "to_version": seven}
        )
        assert migrate.status_code == 403
    assert not [d for d in await registry.list_all(client.pool) if d.name == name]


async def test_with_access_on_a_rep_is_offered_no_change_and_refused_each(
    client: DealflowClient, deployed: dict[str, PinnedDefinition]
) -> None:
    name = process_name("roles")
    app = app_over(client, policy())
    async with http(app) as ops:
        await sign_in(app.state.client, ops, "olga")
        assert (await _deploy(ops, "orders.yaml", orders(1, name))).status_code == 303
        assert (await _deploy(ops, "orders.yaml", orders(2, name))).status_code == 303
        ops_page = await ops.get(f"/definitions/{name}")
        assert "Migrate running deals" in ops_page.text
        assert "Signed in as <strong>olga</strong> (ops)" in ops_page.text
    v1, v2 = [d.version for d in await registry.list_all(client.pool) if d.name == name]
    async with http(app) as rep:
        await sign_in(app.state.client, rep, "rita")
        listing = await rep.get("/definitions")
        assert listing.status_code == 200 and name in listing.text
        assert "/definitions/preview" not in listing.text and 'action="/experiments"' not in listing.text
        one = await rep.get(f"/definitions/{name}")
        assert "Compare two versions" in one.text, "a rep may read and compare"
        assert "/migration" not in one.text, "but is offered no migration"
        csrf = csrf_of(listing.text)

        preview = await redirected(
            rep, await _preview(rep, "orders.yaml", orders(1, process_name("rep"))), "/definitions"
        )
        assert "Refused (forbidden)" in preview.text and "rita is rep" in preview.text
        deploy = await rep.post(
            "/definitions/deploy",
            data={
                "csrf_token": csrf,
                "filename": "orders.yaml",
                "version": "x",
                "yaml": base64.b64encode(orders(1, name).encode()).decode(),
            },
        )
        assert "Refused (forbidden)" in (await redirected(rep, deploy, "/definitions")).text
        form = {"csrf_token": csrf, "from_version": v1, "to_version": v2, "stage_map": ""}
        for path in (f"/definitions/{name}/migration", f"/definitions/{name}/migration/apply"):
            refused = await redirected(rep, await rep.post(path, data=form), f"/definitions/{name}")
            assert "may act, read, start, not migrate" in refused.text, path
        experiment = f"experiment: {name}\nprocess: {name}\narms: [{{version: {v1}}}, {{version: {v2}}}]\n"
        started = await rep.post("/experiments", data={"csrf_token": csrf, "yaml": experiment})
        assert "Refused (forbidden)" in (await redirected(rep, started, "/definitions")).text
    assert [d.version for d in await registry.list_all(client.pool) if d.name == name] == [v1, v2]
    assert name not in [e.experiment for e in await experiment_service.list_all(client)]
    recorded = {(r.action, r.target) for r in await audit_service.refusals(client, limit=100) if r.actor == "rita"}
    assert {("deploy", "orders.yaml"), ("migrate", name)} <= recorded


async def test_markup_in_definitions_deals_and_filters_shows_as_text(
    client: DealflowClient, deployed: dict[str, PinnedDefinition]
) -> None:
    name = process_name("markup")
    deal_id = new_deal_id("markup")
    async with http(app_over(client)) as api:
        preview = await _preview(api, "hostile.yaml", HOSTILE.format(name=name))
        assert preview.status_code == 200, preview.text
        pages = [preview.text]
        assert (
            await api.post("/definitions/deploy", data=hidden_fields(preview.text, "/definitions/deploy"))
        ).status_code == 303
        await client.start_deal(
            name,
            deal_id,
            "rita",
            fields={"customer": "<script>alert(1)</script>", "title": "<img src=x onerror=alert(1)>"},
        )
        await client.complete_stage(deal_id, "first", actor="rita", facts={"note": "<script>alert(1)</script>"})
        at = _soon()
        for path, params in [
            ("/definitions", {}),
            (f"/definitions/{name}", {}),
            ("/dashboard", {"process": name, "owner": "<script>alert(1)</script>"}),
            ("/dashboard", {"process": name}),
            ("/audit", {"deal": deal_id, "at": at}),
        ]:
            page = await api.get(path, params=params)
            assert page.status_code == 200, (path, page.text)
            pages.append(page.text)
    for html in pages:
        assert "<script>alert" not in html and "<img src=x" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in pages[0] and "&lt;img src=x onerror=alert(1)&gt;" in pages[0]
    definition, dashboard_typed, audit = pages[2], pages[3], pages[5]
    assert "&lt;script&gt;alert(3)&lt;/script&gt;" in definition and "&lt;b&gt;phase&lt;/b&gt;" in definition
    assert 'value="&lt;script&gt;alert(1)&lt;/script&gt;"' in dashboard_typed
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in audit and "&lt;img src=x onerror=alert(1)&gt;" in audit


async def test_the_dashboard_refuses_bad_filters_in_words(
    client: DealflowClient, deployed: dict[str, PinnedDefinition]
) -> None:
    async with http(app_over(client)) as api:
        backwards = await api.get("/dashboard", params={"since": "2026-03-02", "until": "2026-03-01"})
        assert backwards.status_code == 422
        assert "since 2026-03-02T00:00:00+00:00 is not before until 2026-03-01T00:00:00+00:00" in backwards.text
        assert 'value="2026-03-02"' in backwards.text, "the values typed come back"
        orphan = await api.get("/dashboard", params={"version": "abc"})
        assert orphan.status_code == 422 and "a version needs a process" in orphan.text
        then = await api.get("/dashboard", params={"process": "seven-stage", "as_of": "2000-01-01T00:00"})
        assert then.status_code == 200 and "<strong>0</strong> deals" in then.text, "nothing had started then"
        garbled = await api.get("/dashboard", params={"since": "2026-13-01"})
        assert garbled.status_code == 422 and "since: expected a date such as 2026-03-01" in garbled.text
        seven = deployed["seven-stage"].version
        same = await api.get("/dashboard", params={"process": "seven-stage", "a": seven, "b": seven})
        assert same.status_code == 422 and "two different versions" in same.text


async def test_the_audit_reads_an_instant_in_the_zone_named(
    client: DealflowClient, deployed: dict[str, PinnedDefinition]
) -> None:
    deal_id = new_deal_id("asof")
    await client.start_deal("seven-stage", deal_id, "rita")
    before = datetime.now(UTC)
    await client.complete_stage(deal_id, "prospecting", actor="rita", facts=SEVEN_FACTS["prospecting"])
    async with http(app_over(client)) as api:
        # the same instant, typed in Berlin's time: the deal was still prospecting then
        local = before.astimezone(ZoneInfo("Europe/Berlin")).strftime("%Y-%m-%dT%H:%M:%S.%f")
        berlin = await api.get("/audit", params={"deal": deal_id, "at": local, "tz": "Europe/Berlin"})
        assert berlin.status_code == 200, berlin.text
        assert "read in Europe/Berlin" in berlin.text
        assert '<th scope="row">Stage</th><td>prospecting' in berlin.text
        bad_zone = await api.get("/audit", params={"deal": deal_id, "at": local, "tz": "Mars/Olympus"})
        assert bad_zone.status_code == 422 and "Mars/Olympus&#39; is not a zone name" in bad_zone.text
        early = await api.get("/audit", params={"deal": deal_id, "at": "2000-01-01T00:00"})
        assert early.status_code == 409 and "had not started" in early.text
        assert "Timeline, from Temporal" in early.text, "the rest of the audit is still shown"


async def test_an_experiment_is_started_compared_and_stopped(client: DealflowClient) -> None:
    name = process_name("exp")
    async with http(app_over(client)) as api:
        assert (await _deploy(api, "orders.yaml", orders(1, name))).status_code == 303
        assert (await _deploy(api, "orders.yaml", orders(2, name))).status_code == 303
        v1, v2 = [d.version for d in await registry.list_all(client.pool) if d.name == name]
        csrf = csrf_of((await api.get("/definitions")).text)

        bad = await api.post(
            "/experiments", data={"csrf_token": csrf, "yaml": f"experiment: {name}\nprocess: {name}\n"}
        )
        bad = await redirected(api, bad, "/definitions")
        assert "invalid_experiment" in bad.text
        assert f"experiment: {name}\nprocess: {name}\n</textarea>" in bad.text, "the text typed comes back"

        text = (
            f"experiment: {name}\nprocess: {name}\narms: [{{version: {v1}, weight: 1}}, {{version: {v2}, weight: 3}}]\n"
        )
        started = await api.post(
            "/experiments",
            data={"csrf_token": csrf},
            files=[("file", ("split.yaml", text.encode(), "application/yaml")), ("yaml", (None, b""))],
        )
        assert started.status_code == 303, started.text
        listing = await api.get(started.headers["location"])
        assert f"Experiment {name} started" in listing.text
        assert f'action="/experiments/{name}/stop"' in listing.text and "running" in listing.text
        deal = await client.start_deal(name, new_deal_id("exp"), "rita")
        assert deal.process_ref in {f"{name}@{v1}", f"{name}@{v2}"}

        dashboard = await api.get("/dashboard", params={"process": name})
        assert dashboard.status_code == 200
        assert f"<h3>{name}</h3>" in dashboard.text and "not enough deals yet" in dashboard.text

        stopped = await api.post(f"/experiments/{name}/stop", data={"csrf_token": csrf})
        assert stopped.status_code == 303
        after = await api.get(stopped.headers["location"])
        assert f"Experiment {name} stopped" in after.text and f'action="/experiments/{name}/stop"' not in after.text
        again = await api.post(f"/experiments/{name}/stop", data={"csrf_token": csrf})
        assert "has already stopped" in (await redirected(api, again, "/definitions")).text
    assert [e.running for e in await experiment_service.list_all(client) if e.experiment == name] == [False]
