"""The HTTP API: every deal action and read over HTTP, with the CLI's error codes as statuses,
Idempotency-Key, and OpenAPI."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from client.api import DealflowClient
from definitions.loader import PinnedDefinition, load_file
from store import event_log
from tests.support import TESTS, new_deal_id
from tests.support.web import app_over, http

PROSPECTING = {"need": "faster quotes", "can_afford": "yes"}


async def _start(api: httpx.AsyncClient, deal_id: str, **extra: Any) -> httpx.Response:
    body = {"process": "seven-stage", "deal_id": deal_id, "owner": "rita", "value": 1200} | extra
    return await api.post("/api/v1/deals", json=body)


async def test_a_currency_through_the_api(client: DealflowClient, deployed: dict[str, PinnedDefinition]) -> None:
    deal_id = new_deal_id("apicur")
    async with http(app_over(client), **{"X-Dealflow-User": "rita"}) as api:
        assert (await _start(api, deal_id, process="abroad")).status_code == 201
        url = f"/api/v1/deals/{deal_id}/complete"
        wrong = await api.post(url, json={"stage": "qualify", "facts": {"currency": "EUX", "seats": 1}})
        assert (wrong.status_code, wrong.json()["code"]) == (422, "invalid_fact")
        assert "currency: EUX is not an ISO 4217 currency code (such as EUR, NOK or USD), got 'EUX'" in wrong.text
        done = await api.post(url, json={"stage": "qualify", "facts": {"currency": "DKK", "seats": 1}})
        assert done.status_code == 200, done.text
        status = await api.get(f"/api/v1/deals/{deal_id}", params={"min_seq": done.json()["last_seq"]})
        assert status.json()["state"]["facts"]["qualify"] == {"currency": "DKK", "seats": 1}
        assert (await api.post(f"/api/v1/deals/{deal_id}/lose", json={"reason": "no-budget"})).status_code == 200


async def test_a_rep_drives_a_deal_through_the_api(
    client: DealflowClient, deployed: dict[str, PinnedDefinition]
) -> None:
    deal_id = new_deal_id("api")
    async with http(app_over(client), **{"X-Dealflow-User": "rita"}) as api:
        started = await _start(api, deal_id)
        assert started.status_code == 201, started.text
        assert started.json()["stage"] == "prospecting"

        wrong = await api.post(
            f"/api/v1/deals/{deal_id}/complete",
            json={"stage": "prospecting", "facts": {"can_afford": "perhaps", "need": "x"}},
        )
        assert wrong.status_code == 422
        assert wrong.json()["code"] == "invalid_fact"
        assert "can_afford: expected yes or no, got 'perhaps'" in wrong.json()["message"]

        done = await api.post(f"/api/v1/deals/{deal_id}/complete", json={"stage": "prospecting", "facts": PROSPECTING})
        assert done.status_code == 200, done.text
        assert done.json()["stage"] == "preparation"
        seq = done.json()["last_seq"]

        status = await api.get(f"/api/v1/deals/{deal_id}", params={"min_seq": seq})
        assert status.status_code == 200
        assert status.json()["state"]["stage"] == "preparation"
        assert status.json()["state"]["facts"]["prospecting"] == {"need": "faster quotes", "can_afford": True}

        stale = await api.post(f"/api/v1/deals/{deal_id}/complete", json={"stage": "prospecting", "facts": PROSPECTING})
        assert stale.status_code == 409, "the deal moved on: a conflict with its state"

        back = await api.post(f"/api/v1/deals/{deal_id}/move", json={"to": "prospecting"})
        assert (back.status_code, back.json()["code"]) == (422, "reason_required")
        back = await api.post(f"/api/v1/deals/{deal_id}/move", json={"to": "prospecting", "reason": "wrong contact"})
        assert back.status_code == 200 and back.json()["stage"] == "prospecting"

        lost = await api.post(f"/api/v1/deals/{deal_id}/lose", json={"reason": "no-budget", "note": "frozen"})
        assert lost.status_code == 200 and lost.json()["status"] == "lost"

        events = await api.get(f"/api/v1/deals/{deal_id}/events")
        types = [e["type"] for e in events.json()]
        assert types[0] == "DealStarted" and types[-1] == "DealLost"
        assert "MovedBack" in types

        listed = await api.get("/api/v1/deals", params={"owner": "rita", "status": "lost", "process": "seven-stage"})
        assert deal_id in [d["deal_id"] for d in listed.json()["items"]]


async def test_refusals_and_unknowns_map_to_http_statuses_and_change_nothing(
    client: DealflowClient, deployed: dict[str, PinnedDefinition]
) -> None:
    deal_id = new_deal_id("api")
    async with http(app_over(client)) as api:
        assert (await _start(api, deal_id, owner="local")).status_code == 201
        before = await event_log.last_seq(client.pool, deal_id)

        missing = await api.get("/api/v1/deals/no-such-deal")
        assert (missing.status_code, missing.json()["code"]) == (404, "unknown_deal")
        unknown_process = await _start(api, new_deal_id("api"), process="no-such-process")
        assert (unknown_process.status_code, unknown_process.json()["code"]) == (404, "unknown_process")
        again = await _start(api, deal_id, owner="local")
        assert (again.status_code, again.json()["code"]) == (409, "deal_exists")
        malformed = await api.post(f"/api/v1/deals/{deal_id}/move", json={"to": 7, "extra": 1})
        assert malformed.status_code == 422
        assert malformed.json()["code"] == "invalid_request"
        assert "extra" in malformed.json()["message"]
        not_json = await api.post(
            f"/api/v1/deals/{deal_id}/move", content=b"{", headers={"Content-Type": "application/json"}
        )
        assert (not_json.status_code, not_json.json()["code"]) == (422, "invalid_request")
        unknown_reason = await api.post(f"/api/v1/deals/{deal_id}/lose", json={"reason": "bored"})
        assert (unknown_reason.status_code, unknown_reason.json()["code"]) == (422, "unknown_reason")

        assert await event_log.last_seq(client.pool, deal_id) == before, "no refusal recorded anything"


async def test_an_idempotency_key_returns_the_first_answer_and_records_nothing_more(
    client: DealflowClient, deployed: dict[str, PinnedDefinition]
) -> None:
    deal_id = new_deal_id("api")
    async with http(app_over(client)) as api:
        headers = {"Idempotency-Key": f"start-{deal_id}"}
        first = await api.post("/api/v1/deals", json={"process": "seven-stage", "deal_id": deal_id}, headers=headers)
        repeat = await api.post("/api/v1/deals", json={"process": "seven-stage", "deal_id": deal_id}, headers=headers)
        assert first.status_code == repeat.status_code == 201
        assert first.json() == repeat.json()
        assert repeat.headers["Idempotent-Replayed"] == "true"

        key = {"Idempotency-Key": f"complete-{deal_id}"}
        body = {"stage": "prospecting", "facts": PROSPECTING}
        done = await api.post(f"/api/v1/deals/{deal_id}/complete", json=body, headers=key)
        logged = await event_log.last_seq(client.pool, done.json()["deal_id"])
        again = await api.post(f"/api/v1/deals/{deal_id}/complete", json=body, headers=key)
        assert again.json() == done.json() and again.headers["Idempotent-Replayed"] == "true"
        assert await event_log.last_seq(client.pool, deal_id) == logged

        other = await api.post(f"/api/v1/deals/{deal_id}/complete", json={"stage": "preparation"}, headers=key)
        assert (other.status_code, other.json()["code"]) == (422, "idempotency_key_reused")


async def test_an_uploaded_definition_brings_the_template_files_it_names(client: DealflowClient) -> None:
    from definitions.loader import shipped

    seven = next(p for p in shipped() if p.name == "seven-stage.yaml")
    named = {t.file for t in load_file(seven).definition.proposal_templates}
    assert any("/" in f for f in named), "the shipped definition keeps its templates in a folder"
    templates = {Path(f).name: (seven.parent / f).read_text(encoding="utf-8") for f in named}
    body = {"filename": seven.name, "yaml": seven.read_text(encoding="utf-8"), "templates": templates}
    async with http(app_over(client)) as api:
        checked = await api.post("/api/v1/definitions/validate", json=body)
        without = await api.post("/api/v1/definitions/validate", json=body | {"templates": {}})
        sneaky = await api.post("/api/v1/definitions/validate", json=body | {"templates": {"../x.md": "x"}})
    assert checked.status_code == 200, checked.text
    assert checked.json()["name"] == "seven-stage"
    assert (without.status_code, without.json()["code"]) == (422, "invalid_definition")
    assert "template file 'templates/proposal.md' not found in the definition's directory" in without.json()["message"]
    assert (sneaky.status_code, sneaky.json()["code"]) == (422, "invalid_request")


async def test_the_openapi_document_describes_every_surface(client: DealflowClient) -> None:
    async with http(app_over(client)) as api:
        doc = (await api.get("/api/openapi.json")).json()
        docs_page = await api.get("/api/docs")
        script = await api.get("/api/docs-static/swagger-ui-bundle.js")
    paths = set(doc["paths"])
    for path in [
        "/api/v1/deals",
        "/api/v1/deals/{deal_id}",
        "/api/v1/deals/{deal_id}/complete",
        "/api/v1/deals/{deal_id}/move",
        "/api/v1/deals/{deal_id}/win",
        "/api/v1/deals/{deal_id}/lose",
        "/api/v1/deals/{deal_id}/reply",
        "/api/v1/deals/{deal_id}/events",
        "/api/v1/deals/{deal_id}/chain",
        "/api/v1/definitions",
        "/api/v1/definitions/validate",
        "/api/v1/definitions/schema",
        "/api/v1/definitions/{name}",
        "/api/v1/definitions/{name}/diff",
        "/api/v1/definitions/{name}/migrations",
        "/api/v1/experiments",
        "/api/v1/experiments/{name}",
        "/api/v1/experiments/{name}/stop",
        "/api/v1/metrics",
        "/api/v1/metrics/compare",
        "/api/v1/metrics/customers",
        "/api/v1/audit/deals/{deal_id}/timeline",
        "/api/v1/audit/deals/{deal_id}/as-of",
        "/api/v1/audit/deals/{deal_id}/verify",
        "/api/v1/audit/deals/{deal_id}/export",
        "/api/v1/audit/refusals",
    ]:
        assert path in paths, path
    complete = doc["paths"]["/api/v1/deals/{deal_id}/complete"]["post"]
    assert {"401", "403", "404", "409", "422", "503"} <= set(complete["responses"])
    assert any(p["name"] == "Idempotency-Key" for p in complete["parameters"])
    assert docs_page.status_code == 200 and "/api/docs-static/swagger-ui-bundle.js" in docs_page.text
    assert "cdn" not in docs_page.text.lower(), "the docs page loads nothing from elsewhere"
    assert script.status_code == 200 and len(script.content) > 100_000


async def test_a_dry_run_deploy_answers_its_preview_as_documented_and_stores_nothing(client: DealflowClient) -> None:
    name = new_deal_id("dry")  # a process of its own: nothing else deploys it
    text = (TESTS / "processes" / "fem-trinn.yaml").read_text(encoding="utf-8")
    body = {"filename": "dry.yaml", "yaml": text.replace("name: fem-trinn", f"name: {name}", 1)}
    async with http(app_over(client), **{"X-Dealflow-User": "olga"}) as api:
        doc = (await api.get("/api/openapi.json")).json()
        preview = await api.post("/api/v1/definitions", params={"dry_run": "true"}, json=body)
        stored_after_preview = [d for d in await client.definitions() if d.name == name]
        deployed = await api.post("/api/v1/definitions", json=body)
        again = await api.post("/api/v1/definitions", params={"dry_run": "true"}, json=body)
    assert preview.status_code == 200, preview.text
    assert preview.json() | {"version": "-"} == {
        "file": "dry.yaml",
        "name": name,
        "version": "-",
        "stages": 5,
        "already_deployed": False,
        "deployed_by": None,
        "latest": None,
        "changes": [],
        "warnings": [],
    }
    assert stored_after_preview == [], "a dry run stores nothing"
    assert deployed.status_code == 201, deployed.text
    assert deployed.json()["version"] == preview.json()["version"] and deployed.json()["created"] is True
    assert again.status_code == 200
    assert (again.json()["already_deployed"], again.json()["deployed_by"]) == (True, "olga")

    responses = doc["paths"]["/api/v1/definitions"]["post"]["responses"]
    assert responses["200"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/DeployPreview"}
    assert responses["201"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Deployed"}
