"""A corpus of hand-written broken definitions (tests/broken/), each with the error it must get:
the file, the line, the path inside the definition and what is wrong, and never a traceback."""

from __future__ import annotations

import pytest

from definitions.loader import DefinitionError, load_file
from tests.support import TESTS

BROKEN = TESTS / "broken"

# file -> (line, path in the definition, words the message must contain)
EXPECTED: dict[str, tuple[int, str, str]] = {
    "01-empty-file": (1, "<top>", "expected a mapping at the top, got empty"),
    "02-top-level-list": (1, "<top>", "expected a mapping at the top, got list"),
    "03-yaml-syntax": (3, "<top>", "not valid YAML"),
    "04-no-name": (1, "name", "Field required"),
    "05-bad-name": (1, "name", "String should match pattern"),
    "06-no-stages": (5, "stages", "at least 1 item"),
    "07-duplicate-stage": (7, "stages[1].id", "duplicate stage id 'a'"),
    "08-unknown-phase": (7, "stages[1].phase", "stage 'b' refers to unknown phase 'q'"),
    "09-probability-above-one": (7, "stages[1].probability", "less than or equal to 1"),
    "10-negative-probability": (6, "stages[0].probability", "greater than or equal to 0"),
    "11-unknown-field": (6, "stages[0].colour", "unknown field 'colour'"),
    "12-missing-title": (6, "stages[0].title", "Field required"),
    "13-unreadable-duration": (6, "stages[0].reminder.deadline", "cannot read duration 'soon'"),
    "14-negative-duration": (6, "stages[0].reminder.deadline", "negative duration"),
    "15-unknown-cadence": (6, "stages[0].cadence", "unknown cadence 'chase'"),
    "16-unknown-template": (6, "stages[0].proposal_template", "unknown proposal template 'offer'"),
    "17-choice-without-options": (6, "stages[0].exit_criteria[0].options", "is a choice but lists no options"),
    "18-unknown-fact-type": (6, "stages[0].exit_criteria[0].type", "unknown fact type 'colour': the fact types are"),
    "19-repeated-options": (6, "stages[0].exit_criteria[0].options", "options must not repeat"),
    "20-unknown-lost-stage": (10, "outcomes.lost.from_stages[0]", "unknown stage 'c'"),
    "21-unknown-won-stage": (9, "outcomes.won.from_stages[0]", "unknown stage 'z'"),
    "22-no-lost-reasons": (10, "outcomes.lost.reasons", "at least 1 item"),
    "23-no-outcome": (7, "outcomes", "no terminal outcome"),
    "24-post-sale-not-last": (8, "stages[2].post_sale", "post-sale stages must be last"),
    "25-cadence-shorter-than-minimum": (15, "cadences[0].touches", "has 2 touches but min_touches is 5"),
    "26-unknown-time-zone": (12, "timezone", "unknown time zone 'Europe/Atlantis'"),
    "27-bad-business-days": (12, "business_days", "distinct weekdays"),
    "28-unknown-stop-condition": (14, "cadences[0].stop_on[1]", "Input should be 'replied'"),
    "29-unknown-rebuy-kind": (13, "rebuy[0].kind", "'deep-selling', 'up-selling' or 'cross-selling'"),
    "30-duplicate-phase": (5, "phases[1].id", "duplicate phase id 'p'"),
    "31-unsafe-yaml-tag": (12, "<top>", "could not determine a constructor"),
    "32-escalation-bad-notify": (6, "stages[0].reminder.escalations[0].notify", "'owner' or 'manager'"),
    "33-duplicate-fact": (6, "stages[0].exit_criteria[1].fact", "duplicate exit criterion 'size'"),
    "34-unreachable-and-dead-end": (7, "stages[1]", "stage 'b' is unreachable"),
    "35-misspelt-touch-placeholder": (
        21,
        "cadences[0].touches[2].template",
        "unknown placeholder 'custmer' (did you mean 'customer'? known: contact, customer, deal_id, need, owner,",
    ),
    "36-touch-placeholder-with-attribute": (
        14,
        "cadences[0].touches[0].template",
        "{customer.name}: attribute and index access are not allowed",
    ),
    "37-misspelt-proposal-placeholder": (
        16,
        "proposal_templates[0].file",
        "templates/offer-with-typo.md:5: unknown placeholder 'budgt' (did you mean 'budget'?",
    ),
    "38-unknown-holiday-country": (4, "holidays.country", "unknown country 'XX'"),
    "39-unknown-holiday-subdivision": (6, "holidays.subdivision", "unknown subdivision 'XY' of DE (known: BB, BE"),
    "40-unquoted-norway": (5, "holidays.country", "YAML read an unquoted NO as false: write country: 'NO'"),
    "41-unknown-team": (8, "stages[1].team", "stage 'b' refers to unknown team 'closer' (known: ['closers'])"),
    "42-team-without-members": (4, "teams[0].members", "team 'closers' has no members"),
    "43-fixed-person-not-a-member": (6, "teams[0].person", "the fixed person 'heidi' is not one of its members"),
    "44-fixed-without-person": (3, "teams[0].person", "assigns to a fixed person but names none"),
    "45-duplicate-member": (7, "teams[0].members[2]", "member 'alice' is listed twice in team 'openers'"),
    "46-unknown-assign-rule": (5, "teams[0].assign", "'fixed', 'round-robin' or 'fewest-open'"),
    "47-duplicate-team": (4, "teams[1].id", "duplicate team id 'openers'"),
    "48-person-without-fixed-rule": (3, "teams[0].person", "a fixed person ('alice') needs assign: fixed"),
    # a definition reads files from its own directory only (definitions/template_files.py)
    "49-absolute-template-path": (16, "proposal_templates[0].file", "template file '/etc/passwd' is an absolute path"),
    "50-template-path-climbs-out": (
        16,
        "proposal_templates[0].file",
        "template file '../../../../etc/passwd' steps out of the definition's directory ('..')",
    ),
    "51-template-path-to-web-secret": (
        16,
        "proposal_templates[0].file",
        "template file 'templates/../../.dealflow/web-secret' steps out of the definition's directory ('..')",
    ),
    "52-missing-template-file": (
        16,
        "proposal_templates[0].file",
        "template file 'templates/absent.md' not found in the definition's directory",
    ),
    "53-template-symlink-out": (  # templates/outside.md links to the shipped proposal template
        16,
        "proposal_templates[0].file",
        "template file 'templates/outside.md' leads outside the definition's directory (a symbolic link)",
    ),
    "54-touch-minimum-beyond-every-cadence": (
        12,
        "outcomes.lost.min_touches_before_lost",
        "min_touches_before_lost is 8 but no cadence makes that many touches (the longest, 'six', makes 6)",
    ),
    "55-lost-before-any-cadence": (
        13,
        "outcomes.lost.from_stages[0]",
        "a deal at 'a' could never be lost: min_touches_before_lost is 3 and no cadence has started by then",
    ),
    "56-interleaved-phases": (9, "stages[2].phase", "stage 'c' goes back to phase 'get-in' after phase 'close'"),
    "57-phases-out-of-order": (8, "stages[1].phase", "puts phase 'get-in' after phase 'close', but phases lists"),
    "58-remove-unknown-holiday": (6, "holidays.remove[1]", "NL has no holiday named 'Boxing Day' in"),
}


def test_every_file_has_an_expectation() -> None:
    assert sorted(p.stem for p in BROKEN.glob("*.yaml")) == sorted(EXPECTED)
    assert len(EXPECTED) == 58


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_broken_definition_gets_its_error(name: str) -> None:
    path = BROKEN / f"{name}.yaml"
    line, where, words = EXPECTED[name]
    with pytest.raises(DefinitionError) as err:
        load_file(path)
    matching = [p for p in err.value.problems if p.path == ("" if where == "<top>" else where) and words in p.message]
    assert len(matching) == 1, f"{name}: expected {where}: ...{words}..., got:\n{err.value}"
    problem = matching[0]
    assert (problem.file, problem.line) == (str(path), line)
    assert str(problem).startswith(f"{path}:{line}: {where}: ")


def test_a_refused_template_file_is_named_as_written_never_by_the_servers_path() -> None:
    for name in ("49-absolute-template-path", "50-template-path-climbs-out", "52-missing-template-file"):
        with pytest.raises(DefinitionError) as err:
            load_file(BROKEN / f"{name}.yaml")
        assert all(str(BROKEN) not in p.message for p in err.value.problems), name
    with pytest.raises(DefinitionError) as err:
        load_file(BROKEN / "53-template-symlink-out.yaml")
    assert "definitions/processes" not in str(err.value)  # where the link leads is not told either
