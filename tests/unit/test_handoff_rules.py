"""Handoffs between teams, without servers: the definition language's teams, their validation and
diff, and the pure rules that decide when a deal is handed over and to whom."""

from __future__ import annotations

import json
import typing
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import pytest
import yaml

from definitions.diff import diff
from definitions.loader import DefinitionError, PinnedDefinition, load_file, load_text, shipped
from definitions.model import AssignRule, ProcessDefinition, Team, json_schema
from definitions.templates import check
from domain import decide, events, handoffs, notifications
from domain.commands import CompleteStage, StartDeal
from domain.effects import HandOver, MakeProposal, Notify, effects_of
from domain.events import DealEvent, HandedOff
from domain.reminders import next_rung
from domain.state import DealState, fold
from tests.support import TESTS

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)

TEAMS: dict[str, Any] = {
    "name": "teamed",
    "teams": [
        {"id": "openers", "members": ["alice", "bob"], "assign": "round-robin"},
        {"id": "closers", "members": ["carol", "dave", "erin"], "assign": "fewest-open"},
        {"id": "success", "members": ["frank", "grace"], "assign": "fixed", "person": "frank"},
    ],
    "phases": [
        {"id": "get-in", "title": "Get in", "team": "openers"},
        {"id": "close", "title": "Close", "team": "closers"},
        {"id": "after", "title": "After the sale", "team": "success"},
    ],
    "stages": [
        {"id": "first-contact", "title": "First contact", "phase": "get-in", "probability": 0.1},
        {
            "id": "qualify",
            "title": "Qualify",
            "phase": "get-in",
            "probability": 0.2,
            "team": "closers",  # the stage's own team wins over its phase's
            "reminder": {"deadline": "1 business day", "escalations": [{"after": "1 business day"}]},
        },
        {
            "id": "negotiate",
            "title": "Negotiate",
            "phase": "close",
            "probability": 0.6,
            "proposal_template": "offer",
        },
        {"id": "onboard", "title": "Onboard", "phase": "after", "probability": 1.0, "post_sale": True},
    ],
    "outcomes": {"won": {}, "lost": {"reasons": ["price"]}},
    "proposal_templates": [{"id": "offer", "file": "templates/offer.md"}],
}


def _load(data: dict[str, Any]) -> PinnedDefinition:
    return load_text(yaml.safe_dump(data, sort_keys=False), source="teamed.yaml", base=TESTS / "processes")


def _teamed() -> ProcessDefinition:
    return _load(TEAMS).definition


# --- the language ---------------------------------------------------------------------------


def test_a_stage_is_owned_by_its_own_team_else_its_phases() -> None:
    d = _teamed()
    owners = {s.id: t.id if (t := d.team_of(s.id)) else None for s in d.stages}
    assert owners == {"first-contact": "openers", "qualify": "closers", "negotiate": "closers", "onboard": "success"}
    assert d.team("success").person == "frank"


def test_the_json_schema_describes_teams_and_who_owns_phases_and_stages() -> None:
    schema = json_schema()
    team = schema["$defs"]["Team"]["properties"]
    assert set(team) == {"id", "title", "members", "assign", "person"}
    assert schema["$defs"]["AssignRule"]["enum"] == ["fixed", "round-robin", "fewest-open"]
    assert "team" in schema["$defs"]["Stage"]["properties"] and "team" in schema["$defs"]["Phase"]["properties"]
    assert "teams" in schema["properties"]


def test_the_events_rules_are_the_languages_rules() -> None:
    assert list(typing.get_args(events.AssignRule)) == [r.value for r in AssignRule]
    assert {handoffs.RULES[r] for r in AssignRule} == set(typing.get_args(events.AssignRule))


def test_a_definition_without_teams_serialises_as_before_teams_existed() -> None:
    """So its version, and the payloads of deals already running it, stay what they were."""
    for path in shipped():
        dumped = json.dumps(load_file(path).definition.model_dump(mode="json"))
        if path.stem != "sales-factory-teams":
            assert '"team' not in dumped, path
    assert '"teams"' in json.dumps(_teamed().model_dump(mode="json"))


def test_a_teamed_definition_reads_back_from_its_pinned_form() -> None:
    pinned = _load(TEAMS)
    again = PinnedDefinition.model_validate_json(pinned.model_dump_json())
    assert again == pinned and again.definition.team_of("qualify") == pinned.definition.team("closers")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d["stages"][0].update(team="nobody"), "stage 'first-contact' refers to unknown team 'nobody'"),
        (lambda d: d["teams"][1].update(members=[]), "team 'closers' has no members"),
        (lambda d: d["teams"][2].update(person="heidi"), "the fixed person 'heidi' is not one of its members"),
        (lambda d: d["teams"][0].update(members=["alice", " bob"]), "member ' bob' of team 'openers' has spaces"),
        (lambda d: d["teams"].append({"id": "openers", "members": ["x"]}), "duplicate team id 'openers'"),
    ],
)
def test_team_mistakes_are_refused_at_deploy(change: Any, message: str) -> None:
    data = json.loads(json.dumps(TEAMS))
    change(data)
    with pytest.raises(DefinitionError) as caught:
        _load(data)
    assert any(message in p.message and p.line for p in caught.value.problems), str(caught.value)


def test_the_shipped_sales_factory_with_teams_hands_over_between_three_teams() -> None:
    d = load_file(next(p for p in shipped() if p.stem == "sales-factory-teams")).definition
    rules = {t.id: t.assign for t in d.teams}
    assert rules == {
        "development": AssignRule.round_robin,
        "account-executives": AssignRule.fewest_open,
        "customer-success": AssignRule.fixed,
    }
    owning = {s.id: t.id if (t := d.team_of(s.id)) else None for s in d.stages}
    assert owning == {
        "suspect": "development",
        "qualifying": "development",
        "funnel-top": "account-executives",
        "funnel-middle": "account-executives",
        "funnel-bottom": "account-executives",
        "customer": "customer-success",
    }


def test_diff_describes_team_changes_in_words() -> None:
    old = _load(TEAMS)
    data = json.loads(json.dumps(TEAMS))
    data["teams"][0]["members"] = ["alice", "nina"]
    data["teams"][1]["assign"] = "round-robin"
    data["teams"][2] = {"id": "care", "members": ["grace"], "assign": "fixed", "person": "grace"}
    data["phases"][2]["team"] = "care"
    data["stages"][1]["team"] = None
    new = _load(data)
    said = [c.text for c in diff(old, new)]
    assert said == [
        "stage qualify: team closers -> none",
        "team care added: [grace], fixed (grace)",
        "team success removed",
        "team closers: assigns fewest-open -> round-robin",
        "team openers: members +nina -bob",
        "phase after: team success -> care",
    ]


# --- when a deal is handed over -------------------------------------------------------------


def _started(d: ProcessDefinition, owner: str) -> list[DealEvent]:
    return decide.start(StartDeal(deal_id="d1", owner=owner, actor=owner), d, "v1", "h", T0)


def test_a_deal_started_by_an_outsider_on_a_teams_stage_is_handed_over_at_once() -> None:
    d = _teamed()
    started = _started(d, "rita")
    state = fold(started)
    assert effects_of(d, state, started[-1]) == [HandOver(entry_seq=2, stage="first-contact", team="openers")]
    assert effects_of(d, fold(_started(d, "bob")), started[-1]) == []  # bob is an opener already


def test_the_handoff_comes_before_the_proposal_of_the_same_entry() -> None:
    data = json.loads(json.dumps(TEAMS))
    data["stages"][1].pop("team")  # qualify is the openers' too: alice keeps the deal until negotiate
    d = _load(data).definition
    events_ = _started(d, "alice")
    state = fold(events_)
    for stage in ("first-contact", "qualify"):
        cmd = CompleteStage(request_id=f"r-{stage}", actor="alice", stage=stage)
        new = decide.complete(state, d, cmd, T0)
        state = fold(new, state)
    assert state.stage == "negotiate"
    assert effects_of(d, state, new[-1]) == [
        HandOver(entry_seq=new[-1].seq, stage="negotiate", team="closers"),
        MakeProposal(template="offer"),
    ]


def test_a_process_without_teams_calls_for_no_handoff() -> None:
    d = load_file(next(p for p in shipped() if p.stem == "three-phase")).definition
    started = _started(d, "rita")
    assert handoffs.team_to_hand_to(d, fold(started), "first-contact") is None
    assert all(not isinstance(e, HandOver) for e in effects_of(d, fold(started), started[-1]))


def test_the_visit_a_handoff_belongs_to_is_the_latest_entry() -> None:
    d = _teamed()
    started = _started(d, "rita")
    assert handoffs.entry_seq(started) == 2
    handed = handoffs.hand_off(fold(started), "first-contact", d.team("openers"), "alice", "x", T0)
    assert handoffs.entry_seq([*started, *handed]) == 2


def test_handed_off_makes_the_new_owner_the_owner_and_tells_them() -> None:
    d = _teamed()
    started = _started(d, "rita")
    state = fold(started)
    how = "round-robin chose alice, who had no deal from this team yet"
    [event] = handoffs.hand_off(state, "first-contact", d.team("openers"), "alice", how, T0)
    assert isinstance(event, HandedOff)
    assert (event.seq, event.actor, event.stage, event.from_owner, event.to_owner, event.team, event.rule) == (
        3,
        decide.SYSTEM_ACTOR,
        "first-contact",
        "rita",
        "alice",
        "openers",
        "round-robin",
    )
    assert event.reason == f"stage first-contact belongs to team openers; rita is not in it; {how}"
    after = fold([event], state)
    assert after.owner == "alice"
    [note] = effects_of(d, after, event)
    assert isinstance(note, Notify) and note.to == "alice" and note.seq == 3
    assert note.subject == "Handed over to you: deal d1 (teamed) at first-contact"
    assert "From: rita\nTeam: openers\nWhy: stage first-contact belongs to team openers" in note.body


def test_reminders_and_escalations_after_a_handoff_go_to_the_new_owner() -> None:
    data = json.loads(json.dumps(TEAMS))
    data["stages"][0]["reminder"] = {"deadline": "1 business day", "escalations": [{"after": "1 business day"}]}
    d = _load(data).definition
    state = fold(_started(d, "rita"))
    state = fold(handoffs.hand_off(state, "first-contact", d.team("openers"), "bob", "x", T0), state)
    rung = next_rung(d, state)
    assert rung is not None
    reminded = decide.remind(state, rung, rung.due_at)
    state = fold(reminded, state)
    escalation = next_rung(d, state)
    assert escalation is not None
    escalated = decide.remind(state, escalation, escalation.due_at)
    assert [(e.type, getattr(e, "to", None)) for e in [*reminded, *escalated]] == [
        ("SlaBreached", None),
        ("ReminderSent", "bob"),
        ("Escalated", "manager-of-bob"),
    ]
    notes = effects_of(d, state, reminded[-1]) + effects_of(d, fold(escalated, state), escalated[0])
    assert [n.to for n in notes if isinstance(n, Notify)] == ["bob", "manager-of-bob"]


def test_the_handoff_notification_renders_even_for_an_empty_state() -> None:
    empty = HandedOff(seq=1, at=T0, actor="x", from_owner="", to_owner="", team="", rule="fixed", reason="")
    text = notifications.handoff_text(DealState(), empty)
    assert text.subject and "{" not in text.subject + text.body
    assert check(notifications.HANDOFF.subject, notifications.NAMES) == []
    assert check(notifications.HANDOFF.body, {*notifications.NAMES, "subject", "sentence"}) == []


# --- to whom --------------------------------------------------------------------------------


def test_round_robin_serves_each_member_in_turn_and_newcomers_first() -> None:
    members = ["alice", "bob", "carol"]
    turns: dict[str, int] = {}
    chosen = []
    for turn in range(1, 7):
        who, _ = handoffs.round_robin(members, turns)
        turns[who] = turn
        chosen.append(who)
    assert chosen == ["alice", "bob", "carol", "alice", "bob", "carol"]
    # a member joins: they have had no deal, so they are next; then the rotation goes on
    members = ["alice", "bob", "nina", "carol"]
    who, how = handoffs.round_robin(members, turns)
    assert (who, how) == ("nina", "round-robin chose nina, who had no deal from this team yet")
    turns[who] = 7
    assert handoffs.round_robin(members, turns) == (
        "alice",
        "round-robin chose alice, the member longest without a deal from this team",
    )


def test_fewest_open_chooses_the_least_loaded_member_and_ties_go_to_the_first_listed() -> None:
    members = ["carol", "dave", "erin"]
    assert handoffs.fewest_open(members, {"carol": 3, "dave": 1, "erin": 2}) == (
        "dave",
        "fewest-open chose dave with 1 open deals (carol 3, erin 2)",
    )
    assert handoffs.fewest_open(members, {"carol": 1, "dave": 1, "erin": 1})[0] == "carol"
    assert handoffs.fewest_open(members, {"carol": 2})[0] == "dave"  # no open deals at all counts as 0


def test_the_fallback_choice_is_stable_and_spreads_deals_over_the_members() -> None:
    team = Team(id="t", members=["a", "b", "c"], assign=AssignRule.round_robin)
    once = handoffs.by_deal(team, "deal-1", "boom")
    assert once == handoffs.by_deal(team, "deal-1", "boom")
    assert once[1] == f"the round-robin choice failed (boom), so {once[0]} was chosen from the deal's id"
    spread = Counter(handoffs.by_deal(team, f"deal-{i}", "x")[0] for i in range(300))
    assert set(spread) == {"a", "b", "c"} and min(spread.values()) > 70


def test_fixed_always_chooses_the_teams_person() -> None:
    team = Team(id="t", members=["frank", "grace"], assign=AssignRule.fixed, person="frank")
    assert handoffs.fixed(team) == ("frank", "the team's fixed person is frank")
