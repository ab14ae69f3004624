"""The HTTP API's public contract: its OpenAPI document against the committed snapshot, its
operation ids, and its answers built from public schemas rather than the store's rows.

To change the contract on purpose, regenerate the snapshot and commit it with the change:
    DEALFLOW_UPDATE_OPENAPI=1 python -m pytest -q tests/unit/test_web_contract.py
"""

from __future__ import annotations

import difflib
import json
import os
import re
import types
import typing
from typing import Any

import pytest
from pydantic import BaseModel

from tests.support import TESTS
from tests.support.web import api_routes, unserved_app

SNAPSHOT = TESTS / "openapi.json"
UPDATE = "DEALFLOW_UPDATE_OPENAPI"
# figures computed in Python (analytics), not rows: they are moving out of store/ on their own
PURE_FIGURES = {
    "store.fact_outcomes",
    "store.follow_up_persistence",
    "store.handoffs",
    "store.insights",
    "store.rep_strength",
}


def _text(doc: dict[str, Any]) -> str:
    return json.dumps(doc, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def _operations(doc: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(method, path, op) for path, ops in doc["paths"].items() for method, op in ops.items()]


def test_the_openapi_document_is_the_committed_snapshot() -> None:
    served = _text(unserved_app().openapi())
    if os.environ.get(UPDATE) == "1":
        SNAPSHOT.write_text(served, encoding="utf-8")
    committed = SNAPSHOT.read_text(encoding="utf-8") if SNAPSHOT.exists() else ""
    if served != committed:
        diff = "".join(
            difflib.unified_diff(
                committed.splitlines(keepends=True),
                served.splitlines(keepends=True),
                fromfile="tests/openapi.json (committed)",
                tofile="the app's /api/openapi.json",
                n=2,
            )
        )
        pytest.fail(
            f"the API's contract changed. If that is meant, run\n    {UPDATE}=1 python -m pytest -q "
            f"tests/unit/test_web_contract.py\nand commit tests/openapi.json with the change.\n{diff}",
            pytrace=False,
        )


def test_operation_ids_read_as_tag_and_action_and_are_unique() -> None:
    ops = _operations(unserved_app().openapi())
    ids = [op.get("operationId") for _, _, op in ops]
    assert all(isinstance(i, str) and re.fullmatch(r"[a-z]+(-[a-z]+)+", i) for i in ids), ids
    assert len(set(ids)) == len(ids), sorted(str(i) for i in ids if ids.count(i) > 1)
    by_route = {(m, p): op["operationId"] for m, p, op in ops}
    assert by_route[("post", "/api/v1/deals/{deal_id}/complete")] == "deals-complete"
    assert by_route[("post", "/api/v1/deals")] == "deals-start"
    assert by_route[("get", "/api/v1/experiments/{name}")] == "experiments-show"
    assert by_route[("get", "/api/v1/me")] == "identity-me"


def _models(annotation: Any, seen: set[type]) -> None:
    """Every pydantic model an answer's type reaches, through lists, unions and fields."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        if annotation in seen:
            return
        seen.add(annotation)
        for field in annotation.model_fields.values():
            _models(field.annotation, seen)
        return
    origin = typing.get_origin(annotation)
    if origin is not None or isinstance(annotation, types.UnionType):
        for arg in typing.get_args(annotation):
            _models(arg, seen)


def test_no_answer_is_a_store_row() -> None:
    reached: set[type] = set()
    routes = api_routes(unserved_app().routes)
    assert len([r for r in routes if r.include_in_schema]) == len(_operations(unserved_app().openapi()))
    for route in routes:
        _models(route.response_model, reached)
        for extra in route.responses.values():
            _models(extra.get("model"), reached)
    rows = sorted(
        f"{m.__module__}.{m.__qualname__}"
        for m in reached
        if m.__module__.startswith("store.") and m.__module__ not in PURE_FIGURES
    )
    assert rows == [], "answer with a public schema (web/schemas.py), not a store row"
    assert any(m.__module__ == "web.schemas" for m in reached)
