"""What a deal has due and when (domain.schedule), without Temporal: the reminder ladder, follow-on
deals, the cadence launch and the log flush, and the order they are handled in."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from definitions.loader import load_file
from domain import decide
from domain.commands import LoseDeal, StartDeal
from domain.events import DealEvent, TouchSent
from domain.schedule import Deadline, Due, Schedule, flush_due, follow_on_due, next_follow_on, schedule
from domain.state import FollowOn, fold
from tests.support import TESTS

CHASE = load_file(TESTS / "processes" / "chase.yaml")
MONDAY = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)  # chase counts business days in UTC
WINDOW = timedelta(seconds=2)


def _started() -> list[DealEvent]:
    start = StartDeal(deal_id="d1", owner="olga", actor="olga")
    return decide.start(start, CHASE.definition, CHASE.version, CHASE.content_hash, MONDAY)


def _touched(events: list[DealEvent], touches: int, at: datetime = MONDAY) -> list[DealEvent]:
    """`events` and then `touches` touches sent at `at`."""
    out = list(events)
    for n in range(1, touches + 1):
        fields = {"cadence_run": "c#1", "touch_no": n, "channel": "email", "message_id": f"m{n}"}
        out += decide.system_event(fold(out), TouchSent, at, **fields)
    return out


def test_a_new_deal_is_due_its_first_reminder_and_an_immediate_flush() -> None:
    events = _started()
    plan = schedule(
        CHASE.definition,
        fold(events),
        cadence_launch=None,
        log_flush=flush_due(events, 0, WINDOW, MONDAY),
    )
    wednesday = MONDAY + timedelta(days=2)
    assert plan.deadlines == (
        Deadline(Due.REMINDER, wednesday, rung=plan.rung),
        Deadline(Due.LOG_FLUSH, MONDAY),  # a start reaches the log at once
    )
    assert plan.rung is not None and (plan.rung.level, plan.rung.stage) == (0, "qualify")
    assert plan.next_at == MONDAY
    assert [d.kind for d in plan.due(MONDAY)] == [Due.LOG_FLUSH]
    assert plan.due(MONDAY - timedelta(seconds=1)) == []


def test_each_rung_of_the_ladder_comes_after_the_one_before_it_fired() -> None:
    events = _started()
    state = fold(events)
    due_at = []
    for _ in range(3):
        plan = schedule(CHASE.definition, state, cadence_launch=None, log_flush=None)
        assert plan.rung is not None
        due_at.append((plan.rung.level, plan.rung.due_at))
        state = fold(decide.remind(state, plan.rung, plan.rung.due_at), state)
    # two business days, then one more, then two more (Monday 2 March 2026, in UTC)
    assert due_at == [
        (0, datetime(2026, 3, 4, 9, tzinfo=UTC)),
        (1, datetime(2026, 3, 5, 9, tzinfo=UTC)),
        (2, datetime(2026, 3, 9, 9, tzinfo=UTC)),
    ]
    assert schedule(CHASE.definition, state, cadence_launch=None, log_flush=None).deadlines == ()


def test_the_ladder_stops_when_the_deal_ends() -> None:
    events = _started()
    lose = LoseDeal(request_id="r1", actor="olga", reason="gave-up")
    # chase is lost from propose on; here from qualify too, the stage with the ladder
    lost_outcome = CHASE.definition.outcomes.lost
    assert lost_outcome is not None
    outcomes = CHASE.definition.outcomes.model_copy(
        update={"lost": lost_outcome.model_copy(update={"from_stages": []})}
    )
    d = CHASE.definition.model_copy(update={"outcomes": outcomes})
    with pytest.raises(decide.Refusal):  # chase wants three touches before a loss
        decide.lose(fold(events), d, lose, MONDAY)
    state = fold(_touched(events, 3))
    assert schedule(d, state, cadence_launch=None, log_flush=None).rung is not None
    lost = fold(decide.lose(state, d, lose, MONDAY), state)
    assert schedule(d, lost, cadence_launch=None, log_flush=None).rung is None


def test_events_wait_a_flush_window_unless_one_of_them_is_urgent() -> None:
    events = _started()
    later = _touched(events, 1, MONDAY + timedelta(minutes=5))[len(events) :]
    logged = events[-1].seq
    assert flush_due(events, logged, WINDOW, MONDAY) is None  # everything is in the log
    assert flush_due([*events, *later], logged, WINDOW, MONDAY) == MONDAY + timedelta(minutes=5) + WINDOW
    assert flush_due([*events, *later], 0, WINDOW, MONDAY) == MONDAY  # the start is among them


def test_follow_ons_are_due_after_their_delay_compressed_by_the_time_scale() -> None:
    first = FollowOn(kind="up-selling", process="p", scheduled_at=MONDAY, due_at=MONDAY + timedelta(days=90))
    second = FollowOn(kind="cross-selling", process="p", scheduled_at=MONDAY, due_at=MONDAY + timedelta(days=30))
    started = fold(_started())
    state = started.model_copy(update={"follow_ons": [first, second]})
    assert next_follow_on(state) == second
    assert follow_on_due(first, time_scale=0.001) == MONDAY + timedelta(days=90) * 0.001
    done = state.model_copy(update={"follow_ons": [first.model_copy(update={"deal_id": "d1.up"}), second]})
    assert next_follow_on(done) == second
    assert next_follow_on(started) is None


def test_several_deadlines_due_at_once_go_in_one_order() -> None:
    """A follow-on first (a deal someone waits for), then a buyer's touch, then a reminder; the
    flush last, so that it carries what the others record."""
    at = MONDAY
    plan = Schedule(
        (
            Deadline(Due.LOG_FLUSH, at),
            Deadline(Due.REMINDER, at - timedelta(hours=1)),
            Deadline(Due.CADENCE_LAUNCH, at),
            Deadline(Due.FOLLOW_ON, at + timedelta(hours=1)),
        )
    )
    assert [d.kind for d in plan.due(at)] == [Due.CADENCE_LAUNCH, Due.REMINDER, Due.LOG_FLUSH]
    assert [d.kind for d in plan.due(at + timedelta(hours=1))] == list(Due)
    assert plan.next_at == at - timedelta(hours=1)
    assert plan.at(Due.FOLLOW_ON) == at + timedelta(hours=1)
    assert Schedule(()).next_at is None
