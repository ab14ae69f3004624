"""The one template language (definitions.templates) and the texts written in it: touches,
notifications, and what deploying a definition says about its templates. Pure: no servers."""

from __future__ import annotations

import copy
import re
import string
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from definitions.loader import DefinitionError, load_file, load_text, shipped
from definitions.model import template_names
from definitions.templates import (
    MessageTemplate,
    MissingValues,
    TemplateSyntaxError,
    check,
    names,
    placeholders,
    render,
)
from domain import notifications
from domain.events import Escalated
from domain.state import DealState
from domain.touches import touch_text
from tests.support import TESTS

# --- syntax ---------------------------------------------------------------------------------


def test_placeholders_come_with_their_lines_in_order_repeats_included() -> None:
    text = "# Offer for {customer}\n\n{need}, {{not a placeholder}}\nfor {customer} by {decision-maker}"
    assert placeholders(text) == [("customer", 1), ("need", 3), ("customer", 4), ("decision-maker", 4)]
    assert names(text) == ["customer", "need", "decision-maker"]


def test_a_text_without_placeholders_has_none() -> None:
    assert placeholders("Following up on our presentation") == []
    assert placeholders("") == []


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        ("Hello {customer.name}", 1, "{customer.name}: attribute and index access are not allowed"),
        ("Hello\n{customer[0]}", 2, "{customer[0]}: attribute and index access are not allowed"),
        ("a\nb\n{customer!r}", 3, "{customer!r}: conversions (!r) are not allowed; write {customer}"),
        ("{value:>10}", 1, "{value:>10}: format specs (:>10) are not allowed; write {value}"),
        ("{value:{width}}", 1, "format specs"),
        ("Hello {}", 1, "{}: a placeholder needs a name"),
        ("Hello {0}", 1, "{0}: a placeholder needs a name"),
        ("Hello { customer }", 1, "{ customer } is not a plain name"),
        ("Hello {customer", 1, "a '{' not closed on the same line"),
        ("Hello {cust\nomer}", 1, "a '{' not closed on the same line"),
        ("ok\nHello customer}", 2, "a lone '}': write '}}' for a literal brace"),
        ("Hello {customer!}", 1, "a malformed placeholder"),
    ],
)
def test_anything_but_a_plain_name_is_refused_with_its_line(text: str, line: int, words: str) -> None:
    with pytest.raises(TemplateSyntaxError) as caught:
        placeholders(text)
    assert caught.value.line == line
    assert words in str(caught.value) and str(caught.value).startswith(f"line {line}: ")
    with pytest.raises(TemplateSyntaxError):
        render(text, {"customer": "Acme", "value": "1", "width": "3"})


# --- rendering ------------------------------------------------------------------------------


def test_render_fills_every_placeholder_and_keeps_escaped_braces() -> None:
    text = "Dear {customer},\n{{literal}} and {owner}: {customer}\r\n"
    assert render(text, {"customer": "Acme", "owner": "olav"}) == "Dear Acme,\n{literal} and olav: Acme\r\n"


def test_values_are_inserted_as_they_are_never_read_as_templates() -> None:
    out = render("Hi {customer}", {"customer": "{owner} {0} {a.b} }{"})
    assert out == "Hi {owner} {0} {a.b} }{"


def test_missing_values_are_all_named_in_order_of_first_use_and_nothing_is_rendered() -> None:
    with pytest.raises(MissingValues) as caught:
        render("{need} for {customer}, {budget} ({need})", {"customer": "Acme", "budget": "  "})
    assert caught.value.missing == ["need", "budget"]  # a blank value is no value
    assert str(caught.value) == "no value for need, budget"


def test_values_the_text_does_not_use_are_ignored() -> None:
    assert render("Hello {owner}", {"owner": "olav", "other": ""}) == "Hello olav"


# Templates built from the pieces the language allows: literal text, escaped braces, names, lines.
_pieces = st.one_of(
    st.text(alphabet=st.characters(blacklist_characters="{}\n"), max_size=8),
    st.sampled_from(["{{", "}}", "\n", "{customer}", "{owner}", "{need}", "{decision-maker}"]),
)


@given(st.lists(_pieces, max_size=12).map("".join))
def test_a_valid_template_renders_exactly_as_str_format_did(text: str) -> None:
    """What the three renderers did with a well-formed template before, this does the same: the
    language is the old `{name}` syntax, made strict, so existing texts and versions stay."""
    values = {"customer": "Acme {x}", "owner": "olav", "need": "CRM", "decision-maker": "Kari"}
    assert render(text, values) == string.Formatter().vformat(text, (), values)
    assert [n for n, _ in placeholders(text)] == [
        field for _, field, _, _ in string.Formatter().parse(text) if field is not None
    ]


# --- checking against known names -----------------------------------------------------------


def test_check_names_each_unknown_placeholder_once_at_its_first_line_with_a_suggestion() -> None:
    problems = check("Hi {custmer}\n{owner} {custmer}\n{zzz}\n{a.b}", {"customer", "owner"})
    assert [(p.line, p.name) for p in problems] == [(1, "custmer"), (3, "zzz"), (4, None)]
    assert problems[0].message == ("unknown placeholder 'custmer' (did you mean 'customer'? known: customer, owner)")
    assert problems[1].message == "unknown placeholder 'zzz' (known: customer, owner)"
    assert "attribute and index access" in problems[2].message


def test_check_accepts_a_template_of_known_names() -> None:
    assert check("{customer} {{x}}\n{owner}", {"customer", "owner"}) == []


# --- messages, touches and notifications ----------------------------------------------------


def test_a_message_names_what_subject_and_body_lack_together() -> None:
    message = MessageTemplate(subject="About {need}", body="{sentence}\n{signature}")
    with pytest.raises(MissingValues) as caught:
        message.render({})
    assert caught.value.missing == ["need", "signature"]
    text = message.render({"need": "a new\nCRM", "signature": "Olav"})
    assert text.subject == "About a new CRM"  # a subject is one line, whatever the values hold
    assert text.body == "About a new CRM.\nOlav"


def test_touch_is_the_template_as_subject_in_a_letter() -> None:
    text = touch_text("Shall we plan the next step, {customer}?", {"customer": "Fjord AS", "owner": "olav"})
    assert text.subject == "Shall we plan the next step, Fjord AS?"
    assert text.body == (
        "Shall we plan the next step, Fjord AS?\n\nDear Fjord AS,\n\n"
        "Shall we plan the next step, Fjord AS?\n\nBest regards,\nolav\n"
    )


def test_touch_without_a_customer_says_hello_and_never_shows_a_brace() -> None:
    text = touch_text("Following up", {"owner": "olav", "customer": ""})
    assert text.body == "Following up\n\nHello,\n\nFollowing up.\n\nBest regards,\nolav\n"
    with pytest.raises(MissingValues) as caught:
        touch_text("A plan for {need}, {customer}", {"owner": "olav"})
    assert caught.value.missing == ["need", "customer"]


def _state(**changes: Any) -> DealState:
    base = DealState(
        deal_id="acme-1", process="seven-stage", owner="alice", stage="closing", fields={"customer": "Acme"}
    )
    return base.model_copy(update=changes)


def _escalated(level: int, reassigned_to: str | None = None) -> Escalated:
    at = datetime(2026, 3, 2, 9, tzinfo=UTC)
    return Escalated(
        seq=9, at=at, actor="system", level=level, notify="manager", to="mona", reassigned_to=reassigned_to, due_at=at
    )


def test_notifications_say_what_the_deal_workflow_said_before() -> None:
    reminder = notifications.reminder_text(_state())
    assert reminder.subject == "Reminder: deal acme-1 (Acme) at closing is overdue"
    assert reminder.body == "Reminder: deal acme-1 (Acme) at closing is overdue.\n\nOwner: alice\nStage: closing\n"
    escalated = notifications.escalation_text(_state(), _escalated(1))
    assert escalated.subject == "Escalation 1: deal acme-1 (Acme) at closing escalated"
    reassigned = notifications.escalation_text(_state(owner="maria"), _escalated(2, "maria"))
    assert reassigned.subject == "Escalation 2: deal acme-1 (Acme) at closing reassigned to maria"
    assert reassigned.body.endswith("Owner: maria\nStage: closing\n")
    without_customer = notifications.reminder_text(_state(fields={}))
    assert without_customer.subject == "Reminder: deal acme-1 (seven-stage) at closing is overdue"


def test_notifications_render_even_for_an_empty_state() -> None:
    """They are rendered in workflow code, where an exception would fail the workflow task."""
    for text in (
        notifications.reminder_text(DealState()),
        notifications.escalation_text(DealState(), _escalated(1)),
        notifications.escalation_text(DealState(), _escalated(2, "maria")),
    ):
        assert text.subject and "{" not in text.subject + text.body


@pytest.mark.parametrize("template", [notifications.REMINDER, notifications.ESCALATION, notifications.REASSIGNMENT])
def test_notification_templates_use_only_their_names(template: MessageTemplate) -> None:
    assert check(template.subject, notifications.NAMES) == []
    assert check(template.body, {*notifications.NAMES, "subject", "sentence"}) == []


# --- deploy ---------------------------------------------------------------------------------


def test_shipped_templates_use_only_known_names() -> None:
    for path in shipped():
        pinned = load_file(path)
        known = template_names(pinned.definition)
        texts = list(pinned.templates.values()) + [t.template for c in pinned.definition.cadences for t in c.touches]
        assert all(check(text, known) == [] for text in texts), path


def test_a_misspelt_touch_placeholder_is_refused_at_the_line_of_the_touch() -> None:
    path = TESTS / "broken" / "35-misspelt-touch-placeholder.yaml"
    with pytest.raises(DefinitionError) as caught:
        load_file(path)
    line = next(i for i, text in enumerate(path.read_text().splitlines(), 1) if "{custmer}" in text)
    assert [str(p) for p in caught.value.problems] == [
        f"{path}:{line}: cadences[0].touches[2].template: unknown placeholder 'custmer' (did you mean 'customer'? "
        "known: contact, customer, deal_id, need, owner, process, process_title, title, value, version)"
    ]


BASE: dict[str, Any] = yaml.safe_load((TESTS / "broken" / "35-misspelt-touch-placeholder.yaml").read_text())


def _with_touch(template: str, **top: Any) -> dict[str, Any]:
    data = copy.deepcopy(BASE)
    data["cadences"][0]["touches"][2]["template"] = template
    data.update(top)
    return data


def test_touches_may_use_builtins_declared_fields_and_facts_of_any_stage() -> None:
    data = _with_touch("{deal_id} {owner} {value} {process} {process_title} {version} {customer} {title} {need}")
    load_text(yaml.safe_dump(data), source="ok.yaml")


def test_a_definition_that_declares_its_fields_knows_only_those() -> None:
    data = _with_touch("Hello {region}", deal_fields=["region"])
    data["cadences"][0]["touches"][0]["template"] = "Following up"
    data["cadences"][0]["touches"][3]["template"] = "Call"
    load_text(yaml.safe_dump(data), source="ok.yaml")
    data["cadences"][0]["touches"][0]["template"] = "Following up, {customer}"
    with pytest.raises(DefinitionError, match=re.escape("touches[0].template: unknown placeholder 'customer'")):
        load_text(yaml.safe_dump(data), source="fields.yaml")


def test_a_touch_template_is_one_line() -> None:
    with pytest.raises(DefinitionError, match="a touch's template is its subject line: write it on one line"):
        load_text(yaml.safe_dump(_with_touch("Hello\n{customer}")), source="lines.yaml")


def test_every_template_problem_is_reported_at_once() -> None:
    data = _with_touch("{custmer} {owner!r}")
    data["cadences"][0]["touches"][0]["template"] = "{neeed}"
    with pytest.raises(DefinitionError) as caught:
        load_text(yaml.safe_dump(data), source="many.yaml")
    found = [(p.path, p.message.split(" (")[0]) for p in caught.value.problems]
    assert found == [
        ("cadences[0].touches[0].template", "unknown placeholder 'neeed'"),
        ("cadences[0].touches[2].template", "{owner!r}: conversions"),
    ]


def test_touch_and_proposal_template_problems_are_reported_together(tmp_path: Path) -> None:
    data = _with_touch("Still there, {custmer}?")
    data["proposal_templates"] = [{"id": "offer", "file": "offer.md"}]
    (tmp_path / "offer.md").write_text("# Offer for {customer}\n\nBudget: {budgt}\n")
    path = tmp_path / "both.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(DefinitionError) as caught:
        load_file(path)
    assert [(p.path, p.message.split(" (")[0]) for p in caught.value.problems] == [
        ("cadences[0].touches[2].template", "unknown placeholder 'custmer'"),
        ("proposal_templates[0].file", "offer.md:3: unknown placeholder 'budgt'"),
    ]
    assert all(p.line for p in caught.value.problems)
