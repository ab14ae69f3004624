"""The definition language: shipped processes, every class of validation error, versions."""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from definitions.durations import Duration, DurationUnit
from definitions.loader import DefinitionError, load_file, load_text, shipped
from definitions.model import json_schema
from tests.support import TESTS

BASE: dict[str, Any] = {
    "name": "mini",
    "phases": [{"id": "p1", "title": "Phase one"}, {"id": "p2", "title": "Phase two"}],
    "stages": [
        {
            "id": "a",
            "title": "A",
            "phase": "p1",
            "probability": 0.1,
            "exit_criteria": [{"fact": "who", "type": "text"}],
            "reminder": {"deadline": "2 business days", "escalations": [{"after": "1 day"}]},
        },
        {"id": "b", "title": "B", "phase": "p1", "probability": 0.5},
        {"id": "c", "title": "C", "phase": "p2", "probability": 0.9, "cadence": "chase"},
    ],
    "outcomes": {"won": {}, "lost": {"reasons": ["price"]}},
    "cadences": [
        {
            "id": "chase",
            "min_touches": 2,
            "touches": [
                {"channel": "email", "template": "one", "delay": "1 day"},
                {"channel": "email", "template": "two", "delay": "2 business days"},
            ],
        }
    ],
}


def _load(data: dict[str, Any]) -> Any:
    return load_text(yaml.safe_dump(data, sort_keys=False), source="mini.yaml")


def test_shipped_definitions_load_with_distinct_stage_counts() -> None:
    names = {}
    for path in shipped():
        pinned = load_file(path)
        names[pinned.name] = len(pinned.definition.stages)
    assert names == {"seven-stage": 7, "three-phase": 4, "sales-factory": 6, "sales-factory-teams": 6}


def test_seven_stage_uses_buyer_aligned_questions_as_exit_criteria() -> None:
    d = load_file(next(p for p in shipped() if p.stem == "seven-stage")).definition
    assert {s.id: [f.fact for f in s.exit_criteria] for s in d.stages} == {
        "prospecting": ["need", "can_afford"],
        "preparation": ["buying_steps"],
        "needs-assessment": ["decision_maker", "budget", "buying_phase"],
        "presentation": ["approach", "next_step"],
        "objection-handling": ["competitors", "enabling_action"],
        "closing": ["close_technique", "signed_on"],
        "follow-up": ["satisfied", "referrals"],
    }
    assert [s.title for s in d.stages] == [
        "Prospecting",
        "Preparation and research",
        "Needs assessment (discovery)",
        "Presentation",
        "Objection handling",
        "Closing",
        "Follow-up, repeat business and referrals",
    ]


STAGE_COUNTS = {"abroad": 2, "chase": 3, "crash": 2, "fem-trinn": 5, "nine-stage": 9, "subscriptions": 3}


@pytest.mark.parametrize("path", sorted((TESTS / "processes").glob("*.yaml")), ids=lambda p: p.stem)
def test_other_stage_counts_and_languages(path: Path) -> None:
    pinned = load_file(path)
    assert len(pinned.definition.stages) == STAGE_COUNTS[path.stem]


def test_minimal_definition_is_valid() -> None:
    pinned = _load(BASE)
    assert pinned.definition.won_from() == ["c"]
    assert pinned.definition.stages[0].reminder is not None
    assert pinned.definition.stages[0].reminder.deadline == Duration(amount=2, unit=DurationUnit.business_days)


Mutation = Callable[[dict[str, Any]], None]


def _set(path: str, value: Any) -> Mutation:
    def mutate(d: dict[str, Any]) -> None:
        target: Any = d
        parts = path.split(".")
        for part in parts[:-1]:
            target = target[int(part)] if part.isdigit() else target[part]
        last = parts[-1]
        if value is _DELETE:
            del target[int(last) if last.isdigit() else last]
        elif last.isdigit():
            target[int(last)] = value
        else:
            target[last] = value

    return mutate


_DELETE = object()


def _both(*mutations: Mutation) -> Mutation:
    def mutate(d: dict[str, Any]) -> None:
        for m in mutations:
            m(d)

    return mutate


ERROR_CASES: list[tuple[str, Mutation, str, str]] = [
    ("duplicate stage id", _set("stages.1.id", "a"), "stages[1].id", "duplicate stage id 'a'"),
    ("duplicate phase id", _set("phases.1.id", "p1"), "phases[1].id", "duplicate phase id 'p1'"),
    ("unknown phase", _set("stages.1.phase", "nowhere"), "stages[1].phase", "unknown phase 'nowhere'"),
    ("unknown cadence", _set("stages.2.cadence", "ghost"), "stages[2].cadence", "unknown cadence 'ghost'"),
    (
        "unknown template",
        _set("stages.2.proposal_template", "ghost"),
        "stages[2].proposal_template",
        "unknown proposal template 'ghost'",
    ),
    (
        "unknown won stage",
        _set("outcomes.won", {"from_stages": ["zz", "c"]}),
        "outcomes.won.from_stages[0]",
        "unknown stage 'zz'",
    ),
    (
        "unreachable stage",
        _both(
            _set("stages.0.moves", {"next": {"allowed": False}, "skip": {"allowed": True}}),
            _set("stages.2.moves", {"back": {"allowed": False}}),
        ),
        "stages[1]",
        "stage 'b' is unreachable",
    ),
    (
        "dead end",
        _both(
            _set("stages.1.moves", {"next": {"allowed": False}, "back": {"allowed": False}}),
            _set("outcomes.lost", {"reasons": ["price"], "from_stages": ["a"]}),
        ),
        "stages[1].moves",
        "dead end",
    ),
    ("no terminal outcome", _set("outcomes", {}), "outcomes", "no terminal outcome"),
    ("no won outcome", _set("outcomes", {"lost": {"reasons": ["x"]}}), "outcomes.won", "could never be won"),
    ("lost without reasons", _set("outcomes.lost", {"reasons": []}), "outcomes.lost.reasons", "at least 1 item"),
    (
        "negative duration",
        _set("stages.0.reminder.deadline", "-3 days"),
        "stages[0].reminder.deadline",
        "negative duration",
    ),
    (
        "unreadable duration",
        _set("stages.0.reminder.deadline", "soon"),
        "stages[0].reminder.deadline",
        "cannot read duration 'soon'",
    ),
    (
        "unknown duration unit",
        _set("stages.0.reminder.deadline", "3 fortnights"),
        "stages[0].reminder.deadline",
        "unknown duration unit",
    ),
    ("bare number duration", _set("stages.0.reminder.deadline", 5), "stages[0].reminder.deadline", "ambiguous"),
    ("probability above one", _set("stages.1.probability", 1.5), "stages[1].probability", "less than or equal to 1"),
    ("missing title", _set("stages.1.title", _DELETE), "stages[1].title", "Field required"),
    ("unknown field", _set("stages.1.colour", "red"), "stages[1].colour", "unknown field 'colour'"),
    ("bad identifier", _set("stages.1.id", "Has Spaces"), "stages[1].id", "String should match pattern"),
    (
        "choice without options",
        _set("stages.0.exit_criteria", [{"fact": "x", "type": "choice"}]),
        "stages[0].exit_criteria[0].options",
        "lists no options",
    ),
    (
        "options on text",
        _set("stages.0.exit_criteria", [{"fact": "x", "type": "text", "options": ["a"]}]),
        "stages[0].exit_criteria[0].options",
        "not 'choice'",
    ),
    (
        "unknown fact type",
        _set("stages.0.exit_criteria", [{"fact": "x", "type": "colour"}]),
        "stages[0].exit_criteria[0].type",
        "unknown fact type 'colour': the fact types are text, number, integer, boolean, date, choice, currency",
    ),
    (
        "options on a currency",
        _set("stages.0.exit_criteria", [{"fact": "x", "type": "currency", "options": ["EUR"]}]),
        "stages[0].exit_criteria[0].options",
        "fact 'x' has options but its type is 'currency', not 'choice'",
    ),
    (
        "duplicate fact",
        _set("stages.0.exit_criteria", [{"fact": "x"}, {"fact": "x"}]),
        "stages[0].exit_criteria[1].fact",
        "duplicate exit criterion 'x'",
    ),
    ("too few touches", _set("cadences.0.min_touches", 5), "cadences[0].touches", "has 2 touches but min_touches is 5"),
    ("post-sale not last", _set("stages.0.post_sale", True), "stages[1].post_sale", "post-sale stages must be last"),
    ("unknown time zone", _set("timezone", "Mars/Olympus"), "timezone", "unknown time zone"),
    ("no stages", _set("stages", []), "stages", "at least 1 item"),
    (
        "last stage not winnable",
        _set("outcomes.won", {"from_stages": ["b"]}),
        "outcomes.won.from_stages",
        "last pre-sale stage 'c' must be listed",
    ),
    ("bad business days", _set("business_days", [0, 9]), "business_days", "distinct weekdays"),
]


@pytest.mark.parametrize(("name", "mutate", "path", "message"), ERROR_CASES, ids=[c[0] for c in ERROR_CASES])
def test_validation_errors_name_file_path_and_problem(name: str, mutate: Mutation, path: str, message: str) -> None:
    data = copy.deepcopy(BASE)
    mutate(data)
    with pytest.raises(DefinitionError) as caught:
        _load(data)
    problems = caught.value.problems
    assert len([p for p in problems if p.path == path and message in p.message]) == 1, [str(p) for p in problems]
    assert all(p.file == "mini.yaml" for p in problems)
    assert str(caught.value).startswith("mini.yaml")


def test_every_problem_is_reported_at_once_with_line_numbers() -> None:
    text = (
        yaml.safe_dump(BASE, sort_keys=False)
        .replace("phase: p2", "phase: nope")
        .replace("cadence: chase", "cadence: gone")
    )
    with pytest.raises(DefinitionError) as caught:
        load_text(text, source="x.yaml")
    problems = caught.value.problems
    assert {p.path for p in problems} == {"stages[2].phase", "stages[2].cadence"}
    lines = text.splitlines()
    for p in problems:
        assert p.line is not None
        assert ("nope" if p.path.endswith("phase") else "gone") in lines[p.line - 1]


def test_yaml_syntax_error_names_line() -> None:
    with pytest.raises(DefinitionError) as caught:
        load_text("name: x\nstages: [a, b\n", source="broken.yaml")
    assert "not valid YAML" in str(caught.value)
    # the unclosed list of line 2 is found at the end of the text, on line 3
    assert [(p.path, p.line) for p in caught.value.problems] == [("", 3)]


@pytest.mark.parametrize("text", ["", "- just\n- a list\n", "42\n"])
def test_top_level_must_be_a_mapping(text: str) -> None:
    with pytest.raises(DefinitionError, match="expected a mapping at the top"):
        load_text(text, source="odd.yaml")


def test_unsafe_yaml_tags_are_refused() -> None:
    with pytest.raises(DefinitionError, match="not valid YAML"):
        load_text("name: !!python/object/apply:os.system ['true']\n", source="evil.yaml")


SECRET = "the server's own secret"


def _beside(tmp_path: Path, named: str) -> tuple[Path, int]:
    """A definition in `defs/` naming the template file `named`, beside a directory it must not
    read (`outside/`, holding a secret); the definition's path and the line naming the file."""
    defs, outside = tmp_path / "defs", tmp_path / "outside"
    (defs / "templates").mkdir(parents=True)
    outside.mkdir()
    (outside / "secret.txt").write_text(SECRET)
    (defs / "offer.md").write_text("# Offer for {customer}\n")
    (defs / "templates" / "offer.md").write_text("# Offer for {customer}\n")
    (defs / "escape.md").symlink_to("../outside/secret.txt")
    (defs / "linked").symlink_to("../outside", target_is_directory=True)
    (defs / "inside.md").symlink_to("offer.md")
    (defs / "loop.md").symlink_to("loop.md")
    (defs / "latin1.md").write_bytes("# Offre pour {customer}, été\n".encode("latin-1"))
    named_yaml = f"proposal_templates:\n  - id: offer\n    file: {json.dumps(named)}\n"
    text = yaml.safe_dump(BASE, sort_keys=False) + named_yaml
    path = defs / "d.yaml"
    path.write_text(text)
    return path, len(text.splitlines())


@pytest.mark.parametrize(
    ("named", "message"),
    [
        ("/etc/passwd", "template file '/etc/passwd' is an absolute path: name it relative to the definition's"),
        ("C:/Windows/win.ini", "template file 'C:/Windows/win.ini' is an absolute path"),
        ("../outside/secret.txt", "template file '../outside/secret.txt' steps out of the definition's directory"),
        ("templates/../offer.md", "template file 'templates/../offer.md' steps out of the definition's directory"),
        ("../../.dealflow/web-secret", "template file '../../.dealflow/web-secret' steps out of the definition's"),
        ("escape.md", "template file 'escape.md' leads outside the definition's directory (a symbolic link)"),
        ("linked/secret.txt", "template file 'linked/secret.txt' leads outside the definition's directory"),
        ("absent.md", "template file 'absent.md' not found in the definition's directory"),
        ("templates", "template file 'templates' is not a file"),
        ("loop.md", "template file 'loop.md' cannot be followed (a loop of symbolic links)"),
        ("latin1.md", "template file 'latin1.md' is not UTF-8 text (byte 25)"),
        ("templates\\offer.md", "write '/' between folders"),
    ],
)
def test_a_template_file_is_read_only_from_inside_the_definitions_directory(
    tmp_path: Path, named: str, message: str
) -> None:
    path, line = _beside(tmp_path, named)
    with pytest.raises(DefinitionError) as caught:
        load_file(path)
    [problem] = caught.value.problems
    assert (problem.file, problem.line, problem.path) == (str(path), line, "proposal_templates[0].file")
    assert message in problem.message
    assert SECRET not in str(caught.value)
    assert str(tmp_path) not in problem.message, "named as written, never by the server's path"


def test_an_absolute_path_is_refused_even_to_a_file_inside_the_directory(tmp_path: Path) -> None:
    path, line = _beside(tmp_path, str(tmp_path / "defs" / "offer.md"))
    with pytest.raises(DefinitionError, match="is an absolute path") as caught:
        load_file(path)
    assert [p.line for p in caught.value.problems] == [line]


@pytest.mark.parametrize("named", ["offer.md", "templates/offer.md", "./offer.md", "inside.md"])
def test_a_template_file_inside_the_directory_is_pinned(tmp_path: Path, named: str) -> None:
    path, _ = _beside(tmp_path, named)
    pinned = load_file(path)
    assert pinned.templates == {"offer": "# Offer for {customer}\n"}


def test_a_definition_given_as_text_alone_reads_no_file(tmp_path: Path) -> None:
    path, line = _beside(tmp_path, "offer.md")
    with pytest.raises(DefinitionError) as caught:
        load_text(path.read_text(), source="pasted.yaml")  # the process's working directory is no base
    assert [str(p) for p in caught.value.problems] == [
        f"pasted.yaml:{line}: proposal_templates[0].file: template file 'offer.md': "
        "the definition came without a directory to read it from"
    ]


def test_unreadable_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(DefinitionError, match="cannot read file"):
        load_file(tmp_path / "absent.yaml")


def test_version_ignores_formatting_and_key_order_but_not_meaning() -> None:
    one = _load(BASE)
    reordered = yaml.safe_dump(dict(reversed(list(BASE.items()))), default_flow_style=True)
    two = load_text("# a comment\n" + reordered)
    assert one.version == two.version and one.content_hash == two.content_hash
    respelt = copy.deepcopy(BASE)
    respelt["stages"][0]["reminder"]["deadline"] = "2 working days"
    assert _load(respelt).version == one.version
    changed = copy.deepcopy(BASE)
    changed["stages"][1]["probability"] = 0.6
    assert _load(changed).version != one.version


def test_json_schema_describes_stages() -> None:
    schema = json_schema()
    assert "stages" in schema["properties"]
    json.dumps(schema)
    fact_type = schema["$defs"]["FactSpec"]["properties"]["type"]
    assert fact_type["enum"] == ["text", "number", "integer", "boolean", "date", "choice", "currency"]


def test_a_currency_fact_is_accepted_and_pinned_as_written() -> None:
    data = copy.deepcopy(BASE)
    data["stages"][0]["exit_criteria"] = [{"fact": "paid_in", "type": "currency", "question": "Currency?"}]
    pinned = _load(data)
    [spec] = pinned.definition.stages[0].exit_criteria
    assert (spec.type, spec.kind.name, spec.kind.analysis.value) == ("currency", "currency", "categorical")
    assert pinned.definition.model_dump(mode="json")["stages"][0]["exit_criteria"][0]["type"] == "currency"


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("# For {customer}\n{nonsense}", "offer.md:2: unknown placeholder 'nonsense'"),
        ("# For {customer\n", "offer.md:1: a '{' not closed on the same line"),
        ("# For {customer.name}\n", "offer.md:1: {customer.name}: attribute and index access are not allowed"),
        ("# For {customer!r}\n", "offer.md:1: {customer!r}: conversions (!r) are not allowed"),
    ],
)
def test_templates_are_validated_at_deploy(tmp_path: Path, template: str, message: str) -> None:
    data = copy.deepcopy(BASE)
    data["proposal_templates"] = [{"id": "offer", "file": "offer.md"}]
    data["stages"][1]["proposal_template"] = "offer"
    (tmp_path / "offer.md").write_text(template)
    path = tmp_path / "d.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(DefinitionError, match=re.escape(message)):
        load_file(path)


def test_template_may_use_facts_fields_and_builtins(tmp_path: Path) -> None:
    data = copy.deepcopy(BASE)
    data["proposal_templates"] = [{"id": "offer", "file": "offer.md"}]
    (tmp_path / "offer.md").write_text("# {customer}: {who} for {owner}, {value}, {deal_id}\n")
    path = tmp_path / "d.yaml"
    path.write_text(yaml.safe_dump(data))
    pinned = load_file(path)
    assert pinned.templates["offer"].startswith("# {customer}")
    changed = tmp_path / "offer.md"
    changed.write_text("# {customer} changed\n")
    assert load_file(path).version != pinned.version  # the template text is part of the version
