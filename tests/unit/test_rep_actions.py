"""A rep action is declared once (app/rep_actions.py): the CLI's subcommand, the API's route
and the deal page's form route are built from its declaration, and it names a real update of the
deal workflow."""

from __future__ import annotations

import argparse

import pytest
from fastapi.routing import APIRoute
from temporalio import workflow

from app.rep_actions import ACTIONS, BY_NAME, LoseRequest, kind_of
from cli.main import build_parser
from tests.support.web import api_routes, unserved_app
from workflows.deal import DealWorkflow


def test_each_action_names_an_update_of_the_deal_workflow() -> None:
    updates = workflow._Definition.must_from_class(DealWorkflow).updates
    assert {a.update for a in ACTIONS} <= set(updates)
    assert [a.name for a in ACTIONS] == ["complete", "move", "win", "lose", "reply"]
    assert all(a.access == "act" and a.deal_rule == "act" for a in ACTIONS)


def test_the_api_routes_take_the_declared_payloads() -> None:
    app = unserved_app()
    doc = app.openapi()
    routes = {(r.path, tuple(sorted(r.methods or ()))): r for r in api_routes(app.routes)}
    for a in ACTIONS:
        op = doc["paths"][f"/api/v1/deals/{{deal_id}}/{a.name}"]["post"]
        assert op["operationId"] == f"deals-{a.name}"
        body = op["requestBody"]["content"]["application/json"]["schema"]
        assert body == {"$ref": f"#/components/schemas/{a.payload.__name__}"}
        assert set(doc["components"]["schemas"][a.payload.__name__]["properties"]) == set(a.payload.model_fields)
        page = routes[(f"/deals/{{deal_id}}/{a.name}", ("POST",))]
        assert isinstance(page, APIRoute) and not page.include_in_schema


def _subcommand(name: str) -> argparse.ArgumentParser:
    top = build_parser()
    deal = next(a for a in top._actions if isinstance(a, argparse._SubParsersAction)).choices["deal"]
    sub = next(a for a in deal._actions if isinstance(a, argparse._SubParsersAction))
    parser: argparse.ArgumentParser = sub.choices[name]
    return parser


def test_the_cli_has_a_flag_per_payload_field() -> None:
    for a in ACTIONS:
        parser = _subcommand(a.name)
        by_dest = {x.dest: x for x in parser._actions}
        for name, info in a.payload.model_fields.items():
            assert a.option(name) in by_dest[name].option_strings
            assert by_dest[name].required == (info.is_required() and kind_of(info) == "text")
        assert {"deal_id", "actor", "request_id", "json"} <= set(by_dest)


def test_the_cli_reads_its_flags_into_the_payload_fields() -> None:
    args = build_parser().parse_args(
        ["deal", "lose", "d-1", "--as", "rita", "--reason", "timing", "--fact", "need=x", "--expected-stage", "s"]
    )
    assert (args.reason, args.facts, args.expected_stage, args.note) == ("timing", {"need": "x"}, "s", None)
    args = build_parser().parse_args(["deal", "win", "d-1", "--as", "rita", "--rebuy", "upsell", "--rebuy", "cross"])
    assert args.rebuy == ["upsell", "cross"] and args.facts == {}
    with pytest.raises(SystemExit):
        build_parser().parse_args(["deal", "reply", "d-1", "--as", "rita", "--kind", "shrugged"])


def test_a_map_field_is_spelled_alike_in_the_cli_and_the_form() -> None:
    assert BY_NAME["complete"].option("facts") == "--fact" and BY_NAME["complete"].entry("facts") == "fact"
    assert BY_NAME["move"].option("expected_stage") == "--expected-stage"
    assert BY_NAME["lose"].done.format_map(dict(LoseRequest.model_construct(reason="x"))) == "Lost"
    assert BY_NAME["reply"].done.format_map(dict(BY_NAME["reply"].payload.model_construct())) == "Buyer replied"
