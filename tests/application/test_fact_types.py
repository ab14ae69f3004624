"""The fact-type registry (definitions/fact_types.py): each type's coercion, widget, analysis kind
and demo value; `currency` against the ISO 4217 list pycountry keeps; a type added to the registry
used by every layer (the definition, the decision, the deal page, the by-fact insight on real
PostgreSQL and Temporal, the demo); a type with no entry refused by each of them by name."""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any, cast

import asyncpg
import pycountry
import pytest

from app.deal_view import FactField
from app.insights_service import comparable_fact
from cli.demo import fact_value
from definitions import fact_types, rules
from definitions.currencies import CURRENCIES
from definitions.fact_types import KINDS, Analysis, FactKind, UnknownFactType, Widget
from definitions.loader import PinnedDefinition, load_text
from definitions.model import FactSpec
from domain import decide
from domain.commands import CompleteStage, LoseDeal, StartDeal
from domain.events import StageCompleted
from domain.state import fold
from store import fact_outcomes
from store.insights import Scope
from tests.support import new_deal_id
from tests.support.insights import T0, append_all
from web.views import TEMPLATES


def _spec(type_: str, **extra: Any) -> FactSpec:
    options = ["a", "b"] if type_ == "choice" else []
    return FactSpec.model_validate({"fact": "x", "type": type_, "options": options, **extra})


@pytest.mark.unit
def test_the_currency_table_is_pycountrys_iso_4217_list() -> None:
    listed = {c.alpha_3: c.name for c in pycountry.currencies}
    missing = sorted(set(listed) - set(CURRENCIES))
    assert not missing, f"ISO 4217 codes to add to definitions/currencies.py: {missing}"
    # a code ISO withdrew stays in the table (a running deal may hold it); none has yet
    assert set(CURRENCIES) == set(listed)
    assert {code: CURRENCIES[code] for code in listed} == listed


@pytest.mark.unit
@pytest.mark.parametrize("name", list(KINDS))
def test_every_type_accepts_its_own_demo_value_and_has_a_widget(name: str) -> None:
    spec = _spec(name)
    rng = random.Random(7)
    for _ in range(20):
        typed = spec.kind.demo(spec, rng)
        assert isinstance(typed, str)
        value = decide.coerce_fact(spec, typed)
        control = spec.kind.control(spec, value)
        assert control.control in ("input", "select") and control.shown
        if control.control == "select":
            assert control.shown in [v for v, _ in control.choices]
    assert spec.kind.analysis in Analysis


@pytest.mark.unit
@pytest.mark.parametrize(("typed", "stored"), [("NOK", "NOK"), (" eur ", "EUR"), ("usd", "USD"), ("XAU", "XAU")])
def test_a_currency_is_an_iso_4217_code_read_in_upper_case(typed: str, stored: str) -> None:
    assert decide.coerce_fact(_spec("currency"), typed) == stored


SHAPE = "expected an ISO 4217 currency code of three letters, such as EUR, NOK or USD"


@pytest.mark.unit
@pytest.mark.parametrize(
    ("typed", "words"),
    [
        ("XYZ", "XYZ is not an ISO 4217 currency code (such as EUR, NOK or USD)"),
        ("EURO", SHAPE),
        ("E1R", SHAPE),
        ("", SHAPE),
        (978, SHAPE),
        (True, SHAPE),
    ],
)
def test_a_bad_currency_is_refused_naming_the_fact(typed: Any, words: str) -> None:
    pinned = load_text(ABROAD, source="abroad.yaml")
    with pytest.raises(decide.Refusal) as refused:
        decide.typed_facts(pinned.definition, "qualify", {"currency": typed, "seats": "3"})
    assert refused.value.code == "invalid_fact"
    assert refused.value.message == f"invalid facts: currency: {words}, got {typed!r}"


@pytest.mark.unit
def test_currency_widget_and_analysis() -> None:
    spec = _spec("currency")
    control = spec.kind.control(spec, "NOK")
    assert (control.control, control.input_type, control.shown) == ("input", "text", "NOK")
    assert ("maxlength", "3") in control.attrs and ("NOK", "NOK (Norwegian Krone)") in control.suggestions
    assert len(control.suggestions) == len(CURRENCIES)
    assert spec.kind.analysis is Analysis.categorical and spec.kind.declared(spec) == []
    assert fact_types.compared(Analysis.categorical) == ["boolean", "choice", "currency"]


ABROAD = """
name: abroad-unit
title: Abroad
phases: [{id: p, title: P}]
stages:
  - id: qualify
    title: Qualify
    phase: p
    probability: 0.2
    exit_criteria:
      - {fact: currency, type: currency}
      - {fact: seats, type: integer}
  - {id: close, title: Close, phase: p, probability: 0.7}
outcomes: {won: {}, lost: {reasons: [no-budget]}}
"""

# --- a type added to the registry, and one with no entry --------------------------------------

COLOURS = ("red", "green", "blue")


def _colour(spec: fact_types.FactSpec, value: Any) -> Any:
    if not isinstance(value, str) or value.strip().lower() not in COLOURS:
        raise ValueError("expected red, green or blue")
    return value.strip().lower()


COLOUR = FactKind(
    "colour",
    _colour,
    Widget(control="select", hint="a colour", choices=lambda spec: tuple((c, c.title()) for c in COLOURS)),
    Analysis.categorical,
    lambda spec, rng: rng.choice(COLOURS),
    declared=lambda spec: list(COLOURS),
)


def _colours(name: str) -> PinnedDefinition:
    return load_text(
        f"""
name: {name}
title: Colours
phases: [{{id: p, title: P}}]
stages:
  - id: pick
    title: Pick
    phase: p
    probability: 0.2
    exit_criteria: [{{fact: hue, type: colour, question: "Which colour?"}}]
  - {{id: close, title: Close, phase: p, probability: 0.7}}
outcomes: {{won: {{}}, lost: {{reasons: [no-budget]}}}}
""",
        source="colours.yaml",
    )


@pytest.mark.unit
async def test_a_type_with_no_entry_fails_loudly_in_every_layer(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(
        Exception, match=r"colours.yaml:10: stages\[0\].exit_criteria\[0\].type: .*unknown fact type 'colour'"
    ):
        _colours("colours")
    monkeypatch.setitem(KINDS, "colour", COLOUR)
    pinned = _colours("colours")
    monkeypatch.delitem(KINDS, "colour")  # a definition read while the type had an entry
    d = pinned.definition
    [spec] = d.stage("pick").exit_criteria
    known = "unknown fact type 'colour': the fact types are text, number, integer, boolean, date, choice, currency"
    calls: dict[str, Callable[[], object]] = {
        "the definition's rules": lambda: rules.check(d),
        "the decision": lambda: decide.typed_facts(d, "pick", {"hue": "red"}),
        "the deal page's widget": lambda: spec.kind.control(spec, None),
        "the insights' check": lambda: comparable_fact(pinned, "pick", "hue"),
        "the demo": lambda: fact_value(spec, random.Random(1)),
    }
    for where, call in calls.items():
        with pytest.raises(UnknownFactType) as failed:
            call()
        assert str(failed.value) == known, where
    with pytest.raises(UnknownFactType, match=known):  # before it asks the database anything
        await fact_outcomes.compute(cast(asyncpg.Pool, None), d, "pick", spec, Scope(process="x"))


async def test_a_type_added_to_the_registry_is_used_by_every_layer(
    monkeypatch: pytest.MonkeyPatch, pool: asyncpg.Pool
) -> None:
    """Not deployed: a stored definition naming a type that other processes (a CLI, another
    worker) have no entry for would stop their reads of every deployed definition."""
    monkeypatch.setitem(KINDS, "colour", COLOUR)
    pinned = _colours(f"colours-{uuid.uuid4().hex[:6]}")
    d = pinned.definition
    assert "colour" in pinned.definition.model_json_schema()["$defs"]["FactSpec"]["properties"]["type"]["enum"]
    [spec] = d.stage("pick").exit_criteria
    assert fact_value(spec, random.Random(3)) in COLOURS

    # the page's widget: the select the entry declares, showing what the deal holds
    field = FactField(
        fact="hue", type="colour", question="Which colour?", options=[], control=spec.kind.control(spec, "green")
    )
    html = TEMPLATES.get_template("deal_fact.html").render(f=field, t={})
    assert 'Which colour? <span class="muted">(a colour)</span>' in html
    assert '<select id="fact-hue" name="fact.hue">' in html and '<option value="green" selected>Green</option>' in html

    # the decision, as the workflow makes it: the entry's reading, its refusal naming the fact
    deals = []
    for i, (typed, outcome) in enumerate([(" GREEN", "lost"), ("blue", "won"), ("green", "lost")]):
        deal_id = new_deal_id("colour")
        events = decide.start(StartDeal(deal_id=deal_id, owner="rita", actor="rita"), d, "v1", "h", T0)
        state = fold(events)
        with pytest.raises(decide.Refusal, match="invalid facts: hue: expected red, green or blue, got 'purple'"):
            decide.complete(
                state, d, CompleteStage(request_id="r0", actor="rita", stage="pick", facts={"hue": "purple"}), T0
            )
        done = decide.complete(
            state, d, CompleteStage(request_id="r1", actor="rita", stage="pick", facts={"hue": typed}), T0
        )
        events += done
        state = fold(done, state)
        at = T0 + timedelta(hours=i + 1)
        if outcome == "won":
            events += decide.complete(state, d, CompleteStage(request_id="r2", actor="rita", stage="close"), at)
        else:
            events += decide.lose(state, d, LoseDeal(request_id="r2", actor="rita", reason="no-budget"), at)
        deals.append(events)
    assert [e.facts for e in deals[0] if isinstance(e, StageCompleted)] == [{"hue": "green"}]

    # the by-fact insight on PostgreSQL: value by value, in the order the entry declares
    await append_all(pool, deals)
    found = await fact_outcomes.compute(pool, d, "pick", spec, Scope(process=d.name))
    assert found.type == "colour" and found.buckets is None
    assert [(v.label, v.deals) for v in found.values] == [("red", 0), ("green", 2), ("blue", 1)]
    assert [(v.win_rate.successes, v.win_rate.n) for v in found.values] == [(0, 0), (0, 2), (1, 1)]
    assert comparable_fact(pinned, "pick", "hue") is spec
