"""What a deal will do by itself next (domain/pending.py): every reminder rung, escalation and
touch with its due time from the pinned calendar, in `deal status` (text and JSON), the API and
the deal page."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml

from client.api import DealflowClient
from definitions.loader import PinnedDefinition, load_text
from domain import decide
from domain.calendar import BusinessCalendar
from domain.commands import CompleteStage, LoseDeal, StartDeal
from domain.events import CadenceStarted, DealEvent, TouchScheduled, TouchSent
from domain.pending import pending
from domain.reminders import ladder, next_rung
from domain.state import fold
from tests.support import new_deal_id
from tests.support.cli import dealflow
from tests.support.web import app_over, http
from workflows.cadence import touch_due

AMSTERDAM = ZoneInfo("Europe/Amsterdam")

DUTCH: dict[str, Any] = {
    "name": "dutch-pending",
    "timezone": "Europe/Amsterdam",
    "holidays": {"country": "NL", "first_year": 2026},
    "phases": [{"id": "p", "title": "Phase"}],
    "stages": [
        {
            "id": "qualify",
            "title": "Qualify",
            "phase": "p",
            "probability": 0.1,
            "reminder": {
                "deadline": "1 business day",
                "escalations": [
                    {"after": "1 business day", "notify": "manager"},
                    {"after": "2 business days", "notify": "manager", "reassign_to": "maria"},
                ],
            },
        },
        {"id": "propose", "title": "Propose", "phase": "p", "probability": 0.5, "cadence": "three"},
        {"id": "close", "title": "Close", "phase": "p", "probability": 0.9},
    ],
    "outcomes": {"won": {}, "lost": {"reasons": ["price"]}},
    "cadences": [
        {
            "id": "three",
            "min_touches": 3,
            "touches": [
                {"channel": "email", "template": "One", "delay": "1 business day"},
                {"channel": "phone", "template": "Two", "delay": "2 business days"},
                {"channel": "email", "template": "Three", "delay": "1 day"},
            ],
        }
    ],
}
PINNED: PinnedDefinition = load_text(yaml.safe_dump(DUTCH), source="dutch.yaml")
D = PINNED.definition
THURSDAY = datetime(2026, 4, 2, 10, 0, tzinfo=AMSTERDAM)  # before Good Friday and Easter Monday


def local(day: int, hour: int = 10, minute: int = 0) -> datetime:
    return datetime(2026, 4, day, hour, minute, tzinfo=AMSTERDAM)


def started(at: datetime = THURSDAY) -> list[DealEvent]:
    return decide.start(StartDeal(deal_id="d1", owner="olga", actor="olga"), D, PINNED.version, "h", at)


@pytest.mark.unit
def test_every_rung_of_the_ladder_with_its_time_across_easter() -> None:
    events = started()
    found = pending(D, fold(events), events)
    # Good Friday, the weekend and Easter Monday are not business days in the pinned NL calendar
    assert [(p.kind, p.level, p.due_at) for p in found] == [
        ("reminder", 0, local(7)),
        ("escalation", 1, local(8)),
        ("escalation", 2, local(10)),
    ]
    assert [p.text for p in found] == [
        "deadline of stage qualify: the owner is reminded",
        "escalation 1 of stage qualify: the manager is notified",
        "escalation 2 of stage qualify: the manager is notified and the deal goes to maria",
    ]
    assert [p.due_at for p in found] == [r.due_at for r in ladder(D, fold(events))]  # as the workflow counts
    # the deadline fired: the escalations are what is left
    state = fold(events)
    rung = next_rung(D, state)
    assert rung is not None
    events += decide.remind(state, rung, rung.due_at)
    assert [(p.kind, p.level) for p in pending(D, fold(events), events)] == [("escalation", 1), ("escalation", 2)]
    # a deal that ended has nothing pending
    events += decide.lose(fold(events), D, LoseDeal(request_id="l", actor="olga", reason="price"), local(9))
    assert pending(D, fold(events), events) == []


@pytest.mark.unit
def test_every_touch_of_the_cadence_with_its_time() -> None:
    events = started()
    events += decide.complete(fold(events), D, CompleteStage(request_id="c", actor="olga", stage="qualify"), THURSDAY)
    state = fold(events)
    assert state.stage == "propose"
    run = {"stage": "propose", "cadence_run": "c#1"}
    events += decide.system_event(state, CadenceStarted, THURSDAY, cadence="three", touches=3, **run)
    first_due = local(7)  # what the deal recorded for the first touch
    events += decide.system_event(
        fold(events), TouchScheduled, THURSDAY, touch_no=1, channel="email", due_at=first_due, **run
    )
    touches = [p for p in pending(D, fold(events), events) if p.kind == "touch"]
    calendar = BusinessCalendar.of(D)
    cadence = D.cadence("three")
    second = touch_due(first_due, cadence.touches[1].delay, calendar, 1.0)
    third = touch_due(second, cadence.touches[2].delay, calendar, 1.0)
    assert (second, third) == (local(9), local(10))  # two business days, then one plain day
    assert [(p.touch_no, p.due_at, p.expected) for p in touches] == [
        (1, first_due, False),
        (2, second, True),
        (3, third, True),
    ]
    assert [p.text for p in touches] == [
        "touch 1 of 3 of cadence three, by email",
        "touch 2 of 3 of cadence three, by phone (expected: if touch 1 goes when due)",
        "touch 3 of 3 of cadence three, by email (expected: if touch 2 goes when due)",
    ]
    # touch 1 sent a little late; touch 2 not scheduled yet: its delay counts from the send
    sent_at = local(7, 10, 5)
    events += decide.system_event(fold(events), TouchSent, sent_at, touch_no=1, channel="email", message_id="m1", **run)
    touches = [p for p in pending(D, fold(events), events) if p.kind == "touch"]
    assert [(p.touch_no, p.due_at) for p in touches] == [(2, local(9, 10, 5)), (3, local(10, 10, 5))]
    assert touches[0].text == "touch 2 of 3 of cadence three, by phone (expected)"
    # everything pending, soonest first
    every = pending(D, fold(events), events)
    assert [p.due_at for p in every] == sorted(p.due_at for p in every)


async def test_deal_status_the_api_and_the_page_show_what_is_pending(
    client: DealflowClient, deployed: dict[str, PinnedDefinition], cli_env: dict[str, str]
) -> None:
    deal = new_deal_id("pending")
    await client.start_deal("chase", deal, "olav", fields={"customer": "Fjord AS", "contact": "b@fjord.example"})
    status = await client.status(deal, min_seq=1)
    chase = deployed["chase"].definition
    rungs = ladder(chase, status.state)
    assert [(p.kind, p.level, p.due_at) for p in status.pending] == [
        ("reminder", 0, rungs[0].due_at),
        ("escalation", 1, rungs[1].due_at),
        ("escalation", 2, rungs[2].due_at),
    ]
    entered = status.state.stage_entered_at
    deadline = chase.stage("qualify").reminder
    assert entered is not None and deadline is not None
    assert rungs[0].due_at == BusinessCalendar.of(chase).add(entered, deadline.deadline)

    done = await client.complete_stage(deal, "qualify", actor="olav")
    status = await client.status(deal, min_seq=done.last_seq)
    touches = [p for p in status.pending if p.kind == "touch"]
    assert [p.touch_no for p in touches] == [1, 2, 3, 4, 5, 6, 7]
    assert [p.expected for p in touches] == [False] + [True] * 6
    scheduled = [e for e in await client.events(deal) if isinstance(e, TouchScheduled)]
    assert touches[0].due_at == scheduled[0].due_at
    assert all(b.due_at > a.due_at for a, b in itertools.pairwise(touches))

    text = await dealflow(cli_env, "deal", "status", deal)
    assert text.code == 0, text.err
    first = touches[0].due_at.astimezone(UTC)
    assert "next, unless something changes first:\n" in text.out
    assert f"  {first:%Y-%m-%d %H:%M} UTC  touch 1 of 7 of cadence seven, by email\n" in text.out
    as_json = (await dealflow(cli_env, "deal", "status", deal, "--json")).json()
    assert [(p["kind"], p["touch_no"]) for p in as_json["pending"]] == [(p.kind, p.touch_no) for p in status.pending]
    assert datetime.fromisoformat(as_json["pending"][0]["due_at"]) == status.pending[0].due_at

    async with http(app_over(client), **{"X-Dealflow-User": "olav"}) as api:
        answered = await api.get(f"/api/v1/deals/{deal}")
        page = await api.get(f"/deals/{deal}")
    assert answered.status_code == 200
    assert [p["text"] for p in answered.json()["pending"]] == [p.text for p in status.pending]
    assert page.status_code == 200 and '<h2 id="pending-heading">Next deadlines</h2>' in page.text
    for p in status.pending:
        assert f"<td>{p.due_at.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC</td><td>{p.text}</td>" in page.text
