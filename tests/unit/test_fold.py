"""The deal as a pure fold over events, and the pure decisions, without Temporal."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from definitions.loader import PinnedDefinition, load_file, shipped
from domain import decide
from domain.commands import CompleteStage, LoseDeal, MoveStage, StartDeal, WinDeal
from domain.events import EVENTS_ADAPTER, DealEvent, DealLost, DealStarted, StageEntered
from domain.state import DealState, apply, as_of, fold
from tests.support import SEVEN_FACTS, TESTS

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def _pinned(name: str) -> PinnedDefinition:
    paths = [*shipped(), *(TESTS / "processes").glob("*.yaml")]
    return load_file(next(p for p in paths if p.stem == name))


class Deal:
    """A deal driven by the pure functions only, as the workflow drives them."""

    def __init__(self, name: str = "seven-stage"):
        self.pinned = _pinned(name)
        self.d = self.pinned.definition
        self.at = T0
        self.n = 0
        self.events: list[DealEvent] = decide.start(
            StartDeal(deal_id="d1", owner="alice", actor="alice", value=1000.0),
            self.d,
            self.pinned.version,
            self.pinned.content_hash,
            self.at,
        )
        self.state = fold(self.events)

    def _rid(self) -> str:
        self.n += 1
        return f"r{self.n}"

    def run(self, fn: object, cmd: object) -> list[DealEvent]:
        self.at += timedelta(hours=1)
        events: list[DealEvent] = fn(self.state, self.d, cmd, self.at)  # type: ignore[operator]
        for e in events:
            self.state = apply(self.state, e)
        self.events += events
        return events

    def complete(self, **facts: Any) -> list[DealEvent]:
        assert self.state.stage is not None
        return self.run(
            decide.complete, CompleteStage(request_id=self._rid(), actor="alice", stage=self.state.stage, facts=facts)
        )

    def move(self, to: str, reason: str | None = None) -> list[DealEvent]:
        return self.run(decide.move, MoveStage(request_id=self._rid(), actor="alice", to=to, reason=reason))


def test_start_enters_first_stage() -> None:
    deal = Deal()
    assert [type(e).__name__ for e in deal.events] == ["DealStarted", "StageEntered"]
    assert deal.state.stage == "prospecting" and deal.state.status == "open"
    assert deal.state.owner == "alice" and deal.state.value == 1000.0 and deal.state.last_seq == 2


def test_full_path_wins_then_closes_after_follow_up() -> None:
    deal = Deal()
    for stage in [s.id for s in deal.d.stages]:
        assert deal.state.stage == stage
        deal.complete(**SEVEN_FACTS[stage])
        if stage == "closing":
            assert deal.state.status == "won" and deal.state.stage == "follow-up"
            assert not deal.state.is_finished
    assert deal.state.is_finished and deal.state.stage is None
    assert deal.events[-1].type == "DealClosed"
    assert deal.state.facts["needs-assessment"] == {
        "decision_maker": "CFO",
        "budget": 50000.0,
        "buying_phase": "evaluation",
    }
    assert deal.state.facts["follow-up"]["referrals"] == 2
    assert [e.seq for e in deal.events] == list(range(1, len(deal.events) + 1))


def test_last_stage_without_post_sale_finishes_on_win() -> None:
    deal = Deal("fem-trinn")
    facts: dict[str, dict[str, object]] = {
        "kartlegging": {"beslutningstaker": "Kari", "budsjett": 10},
        "behov": {"kjopsfase": "kjop"},
        "presentasjon": {"neste_steg": "demo"},
        "innvendinger": {},
        "avslutning": {"signert": "2026-05-01"},
    }
    for stage in facts:
        deal.complete(**facts[stage])
    assert deal.state.status == "won" and deal.state.is_finished
    assert deal.events[-1].type == "DealWon"


def test_missing_facts_are_named() -> None:
    deal = Deal()
    with pytest.raises(decide.Refusal) as caught:
        deal.complete(need="CRM")
    assert caught.value.code == "missing_facts"
    assert "can_afford" in caught.value.message and "need" not in caught.value.details["missing"][0]["fact"]
    assert [m.fact for m in decide.missing_facts(deal.d, deal.state)] == ["need", "can_afford"]


@pytest.mark.parametrize(
    ("facts", "code", "text"),
    [
        ({"need": "x", "can_afford": "perhaps"}, "invalid_fact", "can_afford: expected yes or no"),
        ({"need": "  ", "can_afford": "yes"}, "invalid_fact", "need: expected non-empty text"),
        ({"need": "x", "can_afford": "yes", "nede": "typo"}, "unknown_fact", "'nede'"),
    ],
)
def test_bad_facts_are_refused(facts: dict[str, object], code: str, text: str) -> None:
    deal = Deal()
    with pytest.raises(decide.Refusal) as caught:
        deal.complete(**facts)
    assert caught.value.code == code and text in caught.value.message


def test_fact_types_are_coerced() -> None:
    deal = Deal()
    deal.complete(**SEVEN_FACTS["prospecting"])
    deal.complete(**SEVEN_FACTS["preparation"])
    for bad, text in [({"budget": "lots"}, "expected a number"), ({"buying_phase": "dreaming"}, "expected one of")]:
        with pytest.raises(decide.Refusal, match=text):
            deal.complete(**{**SEVEN_FACTS["needs-assessment"], **bad})
    with pytest.raises(decide.Refusal, match="expected a date"):
        d5 = Deal("fem-trinn")
        d5.complete(beslutningstaker="Kari", budsjett=1)
        d5.complete(kjopsfase="kjop")
        d5.complete(neste_steg="x")
        d5.complete()
        d5.complete(signert="first of May")


def test_skip_and_back_with_reasons() -> None:
    deal = Deal()
    deal.complete(**SEVEN_FACTS["prospecting"])
    with pytest.raises(decide.Refusal) as caught:
        deal.move("presentation")
    assert caught.value.code == "reason_required"
    events = deal.move("presentation", reason="warm referral")
    assert [e.type for e in events] == ["StageSkipped", "StageEntered"]
    assert events[0].skipped == ["needs-assessment"]  # type: ignore[union-attr]
    assert deal.state.stage == "presentation"
    with pytest.raises(decide.Refusal, match="needs a reason"):
        deal.move("preparation")
    deal.move("prospecting", reason="new stakeholder")
    assert deal.state.stage == "prospecting" and deal.state.visits["prospecting"] == 2
    # facts given on the first visit still satisfy the exit criteria on re-entry
    deal.complete()
    assert deal.state.stage == "preparation" and deal.state.visits["preparation"] == 2


@pytest.mark.parametrize(
    ("to", "code"),
    [("needs-assessment", "move_not_allowed"), ("nowhere", "unknown_stage"), ("follow-up", "move_not_allowed")],
)
def test_disallowed_moves(to: str, code: str) -> None:
    deal = Deal()
    deal.complete(**SEVEN_FACTS["prospecting"])
    deal.complete(**SEVEN_FACTS["preparation"])
    with pytest.raises(decide.Refusal) as caught:
        deal.move(to, reason="r")
    assert caught.value.code == code


def test_next_stage_by_move_is_refused_with_hint() -> None:
    deal = Deal()
    with pytest.raises(decide.Refusal, match="complete 'prospecting' instead"):
        deal.move("preparation", reason="r")


def test_stale_expected_stage_is_refused() -> None:
    deal = Deal()
    with pytest.raises(decide.Refusal) as caught:
        deal.run(
            decide.move, MoveStage(request_id="x", actor="a", to="presentation", reason="r", expected_stage="closing")
        )
    assert caught.value.code == "stale_stage"
    with pytest.raises(decide.Refusal) as caught:
        deal.run(decide.complete, CompleteStage(request_id="y", actor="a", stage="closing"))
    assert caught.value.code == "stale_stage"


def test_win_only_from_allowed_stages() -> None:
    deal = Deal()
    with pytest.raises(decide.Refusal) as caught:
        deal.run(decide.win, WinDeal(request_id="w", actor="a"))
    assert caught.value.code == "win_not_allowed" and "closing" in caught.value.message
    nine = Deal("nine-stage")
    for _ in range(5):
        nine.complete()
    nine.run(decide.win, WinDeal(request_id="w", actor="a"))  # s6 is a from_stage
    assert nine.state.status == "won" and nine.state.stage == "s8"
    with pytest.raises(decide.Refusal, match="already won"):
        nine.run(decide.win, WinDeal(request_id="w2", actor="a"))
    with pytest.raises(decide.Refusal, match="already won"):
        nine.run(decide.lose, LoseDeal(request_id="l", actor="a", reason="lost"))


def test_lose_needs_a_listed_reason_and_ends_the_deal() -> None:
    deal = Deal()
    with pytest.raises(decide.Refusal) as caught:
        deal.run(decide.lose, LoseDeal(request_id="l", actor="a", reason="bored"))
    assert caught.value.code == "unknown_reason" and "no-budget" in caught.value.message
    deal.run(decide.lose, LoseDeal(request_id="l", actor="a", reason="no-budget", note=" tight year "))
    assert deal.state.status == "lost" and deal.state.lost_reason == "no-budget" and deal.state.is_finished
    assert isinstance(deal.events[-1], DealLost) and deal.events[-1].note == "tight year"
    with pytest.raises(decide.Refusal) as caught:
        deal.run(decide.complete, CompleteStage(request_id="c", actor="a", stage="prospecting"))
    assert caught.value.code == "deal_closed"


def test_lose_respects_minimum_touches() -> None:
    deal = Deal()
    lost = deal.d.outcomes.lost
    assert lost is not None
    d = deal.d.model_copy(
        update={
            "outcomes": deal.d.outcomes.model_copy(
                update={"lost": lost.model_copy(update={"min_touches_before_lost": 5})}
            )
        }
    )
    cmd = LoseDeal(request_id="l", actor="a", reason="no-budget")
    with pytest.raises(decide.Refusal, match="has had 2 follow-up touches; the process asks for 5"):
        decide.lose(deal.state.model_copy(update={"touches": 2}), d, cmd, T0)
    assert decide.lose(deal.state.model_copy(update={"touches": 5}), d, cmd, T0)[0].type == "DealLost"


def test_requests_are_recorded_for_idempotency() -> None:
    deal = Deal()
    deal.complete(**SEVEN_FACTS["prospecting"])
    record = deal.state.requests["r1"]
    assert (record.first_seq, record.last_seq, record.stage, record.status) == (3, 4, "preparation", "open")


def test_fold_is_pure_and_replayable_from_json() -> None:
    deal = Deal()
    deal.complete(**SEVEN_FACTS["prospecting"])
    deal.move("presentation", reason="skip")
    dumped = EVENTS_ADAPTER.dump_json(deal.events)
    again = fold(EVENTS_ADAPTER.validate_json(dumped))
    assert again == deal.state
    assert fold(deal.events) == fold(deal.events)


def test_as_of_gives_the_state_at_an_instant() -> None:
    deal = Deal()
    deal.complete(**SEVEN_FACTS["prospecting"])  # at T0 + 1h
    deal.complete(**SEVEN_FACTS["preparation"])  # at T0 + 2h
    assert as_of(deal.events, T0 + timedelta(minutes=30)).stage == "prospecting"
    assert as_of(deal.events, T0 + timedelta(hours=1, minutes=30)).stage == "preparation"
    assert as_of(deal.events, T0 + timedelta(days=1)).stage == "needs-assessment"
    assert as_of(deal.events, T0 - timedelta(seconds=1)) == DealState()


def test_out_of_order_event_is_rejected() -> None:
    started = DealStarted(seq=1, at=T0, actor="a", deal_id="d", process="p", version="v", content_hash="h", owner="o")
    with pytest.raises(ValueError, match="does not follow"):
        apply(fold([started]), StageEntered(seq=3, at=T0, actor="a", stage="x", via="next"))


def test_a_loss_may_record_what_the_stage_had_learnt() -> None:
    """A deal lost at closing can say which close was tried, so that closes compare by win rate."""
    deal = Deal()
    for stage in ("prospecting", "preparation", "needs-assessment", "presentation", "objection-handling"):
        deal.complete(**SEVEN_FACTS[stage])
    assert deal.state.stage == "closing"
    for facts, code in [({"budget": 3}, "unknown_fact"), ({"close_technique": "charm"}, "invalid_fact")]:
        with pytest.raises(decide.Refusal) as refused:
            deal.run(decide.lose, LoseDeal(request_id="x", actor="alice", reason="timing", facts=facts))
        assert refused.value.code == code
    [lost] = deal.run(
        decide.lose, LoseDeal(request_id="l", actor="alice", reason="timing", facts={"close_technique": "urgency"})
    )
    assert isinstance(lost, DealLost) and lost.facts == {"close_technique": "urgency"}, "no other fact is required"
    assert deal.state.facts["closing"] == {"close_technique": "urgency"}
    assert deal.state.status == "lost"
