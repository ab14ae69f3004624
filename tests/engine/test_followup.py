"""Weeks of follow-up in seconds, on the time-skipping test server: cadences, replies, restarts,
reminder ladders. The process under test is `tests/processes/chase.yaml`."""

from __future__ import annotations

import itertools
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, date, timedelta
from pathlib import Path

import asyncpg
import pytest
from temporalio import activity
from temporalio.api.testservice.v1 import SleepRequest
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.channels.base import Message
from activities.channels.config import ChannelRegistry, ChannelsConfig
from activities.channels.outbox_dir import OutboxDirChannel
from activities.event_log import EventLogActivities
from activities.messages import MessageActivities
from activities.proposals import ProposalActivities
from client.api import DealflowClient, Refused
from definitions.durations import Duration
from definitions.loader import PinnedDefinition, parse, pin
from domain.activity_io import SEND_MESSAGE, OutgoingMessage, SentMessage
from domain.calendar import BusinessCalendar, add
from domain.events import DealEvent
from store import registry
from tests.support import new_deal_id
from worker.run import WORKFLOWS
from worker.settings import Settings

DAY = timedelta(days=1)


class CountingOutbox(OutboxDirChannel):
    """The outbox directory, counting how often the channel was asked to send."""

    def __init__(self, directory: Path):
        super().__init__("any", directory)
        self.sends: list[str] = []

    async def send(self, message: Message) -> str:
        self.sends.append(message.key)
        return await super().send(message)


class DiesAfterSending(MessageActivities):
    """The worker dies after touch 3 is sent and recorded, before Temporal hears of it."""

    died = False

    @activity.defn(name=SEND_MESSAGE)
    async def send_message(self, msg: OutgoingMessage) -> SentMessage:
        result = await super().send_message(msg)
        if msg.touch_no == 3 and not DiesAfterSending.died:
            DiesAfterSending.died = True
            raise RuntimeError("worker died before reporting the send")
        return result


@dataclass
class Rig:
    env: WorkflowEnvironment
    client: DealflowClient
    pool: asyncpg.Pool
    queue: str
    outbox: CountingOutbox
    proposals: Path

    def worker(self, messages: type[MessageActivities] = MessageActivities) -> Worker:
        registry = ChannelRegistry(ChannelsConfig(outbox_dir=str(self.outbox.directory)), self.outbox.directory)
        registry._channels.update({"email": self.outbox, "phone": self.outbox, "notify": self.outbox})
        sender = messages(self.pool, registry)
        return Worker(
            self.env.client,
            task_queue=self.queue,
            # no workflow cache, so no sticky queue: the test server never hands a stopped worker's
            # sticky tasks to its successor, and every task is a full replay (a determinism check too)
            max_cached_workflows=0,
            workflows=list(WORKFLOWS),
            activities=[
                EventLogActivities(self.pool).append_events,
                sender.send_message,
                ProposalActivities(self.proposals).generate_proposal,
            ],
        )

    async def skip(self, duration: timedelta) -> None:
        """Advance the virtual clock; activities still run in real time, so allow the call a minute."""
        request = SleepRequest()
        request.duration.FromTimedelta(duration)
        await self.env.client.test_service.unlock_time_skipping_with_sleep(request, timeout=timedelta(minutes=1))

    async def events(self, deal: str, kind: str) -> list[DealEvent]:
        return [e for e in await self.client.events(deal) if e.type == kind]

    async def outbox_rows(self, deal: str, kind: str) -> list[asyncpg.Record]:
        return list(
            await self.pool.fetch(
                "SELECT effect_key, status, touch_no FROM outbox WHERE deal_id = $1 AND kind = $2 ORDER BY effect_key",
                deal,
                kind,
            )
        )

    def files(self, deal: str) -> list[Path]:
        return sorted((self.outbox.directory / deal).glob("*.json"))


@pytest.fixture
async def rig(
    time_env: WorkflowEnvironment,
    pool: asyncpg.Pool,
    database_url: str,
    tmp_path: Path,
    deployed: dict[str, PinnedDefinition],
) -> AsyncIterator[Rig]:
    queue = f"follow-{uuid.uuid4().hex[:6]}"
    client = DealflowClient(time_env.client, pool, Settings(database_url=database_url, task_queue=queue))
    yield Rig(time_env, client, pool, queue, CountingOutbox(tmp_path / "outbox"), tmp_path / "proposals")


async def _start_and_propose(rig: Rig, prefix: str) -> str:
    deal = new_deal_id(prefix)
    await rig.client.start_deal(
        "chase", deal, "olav", value=1200, fields={"customer": "Fjord AS", "contact": "buyer@fjord.example"}
    )
    await rig.client.complete_stage(deal, "qualify", actor="olav")
    return deal


async def test_seven_touch_cadence_over_thirty_days_sends_exactly_seven(rig: Rig) -> None:
    async with rig.worker():
        deal = await _start_and_propose(rig, "seven")
        await rig.skip(30 * DAY)
        sent = await rig.events(deal, "TouchSent")
        scheduled = await rig.events(deal, "TouchScheduled")
        completed = await rig.events(deal, "CadenceCompleted")
        status = await rig.client.status(deal)
    assert [e.touch_no for e in sent] == [1, 2, 3, 4, 5, 6, 7]  # type: ignore[union-attr]
    gaps = [(b.due_at - a.due_at) for a, b in itertools.pairwise(scheduled)]  # type: ignore[union-attr]
    assert [round(g / DAY) for g in gaps] == [2, 3, 4, 5, 6, 7]  # each delay counted from the previous touch
    assert len(completed) == 1 and completed[0].touches_sent == 7  # type: ignore[union-attr]
    rows = await rig.outbox_rows(deal, "touch")
    assert [r["touch_no"] for r in rows] == [1, 2, 3, 4, 5, 6, 7] and {r["status"] for r in rows} == {"sent"}
    touch_files = [f for f in rig.files(deal) if "_touch_" in f.name]
    assert len(touch_files) == 7
    assert "Touch 1 for Fjord AS" in touch_files[0].read_text()
    assert len([k for k in rig.outbox.sends if "/touch/" in k]) == 7
    assert status.state.touches == 7 and status.state.cadence is None


async def test_a_touch_without_its_values_is_recorded_failed_and_the_cadence_goes_on(rig: Rig) -> None:
    """Touch 1 says "Touch 1 for {customer}"; a deal started without a customer cannot have it."""
    async with rig.worker():
        deal = new_deal_id("nameless")
        await rig.client.start_deal("chase", deal, "olav", value=1200, fields={"contact": "buyer@fjord.example"})
        await rig.client.complete_stage(deal, "qualify", actor="olav")
        await rig.skip(30 * DAY)
        failed = await rig.events(deal, "TouchFailed")
        sent = await rig.events(deal, "TouchSent")
        completed = await rig.events(deal, "CadenceCompleted")
    assert [(e.touch_no, e.error) for e in failed] == [  # type: ignore[union-attr]
        (
            1,
            "touch 1 not sent: cannot render 'Touch 1 for {customer}': no value for customer (facts not recorded "
            "when the cadence started, or fields the deal has not set)",
        )
    ]
    assert [e.touch_no for e in sent] == [2, 3, 4, 5, 6, 7]  # type: ignore[union-attr]
    assert len(completed) == 1 and completed[0].touches_sent == 6  # type: ignore[union-attr]
    rows = await rig.outbox_rows(deal, "touch")
    assert [r["touch_no"] for r in rows] == [2, 3, 4, 5, 6, 7]  # nothing claimed for the failed touch
    touches = [json.loads(f.read_text()) for f in rig.files(deal) if "_touch_" in f.name]
    assert len(touches) == 6 and not any("{" in t["subject"] + t["body"] for t in touches)
    assert all("\n\nHello,\n\n" in t["body"] for t in touches)  # no customer to greet by name


async def test_reply_after_touch_three_stops_the_cadence_with_three(rig: Rig) -> None:
    async with rig.worker():
        deal = await _start_and_propose(rig, "reply")
        await rig.skip(6 * DAY + timedelta(hours=12))  # touches at days 1, 3, 6; the 4th is due on day 10
        assert len(await rig.events(deal, "TouchSent")) == 3
        await rig.client.record_response(deal, actor="olav", kind="replied", note="call me")
        await rig.skip(30 * DAY)
        stopped = await rig.events(deal, "CadenceStopped")
        sent = await rig.events(deal, "TouchSent")
        responded = await rig.events(deal, "BuyerResponded")
    assert len(sent) == 3
    assert [e.reason for e in stopped] == ["replied"]  # type: ignore[union-attr]
    assert len(responded) == 1 and responded[0].actor == "olav"
    assert len(await rig.outbox_rows(deal, "touch")) == 3


async def test_restart_and_crash_after_sending_send_no_duplicate(rig: Rig) -> None:
    async with rig.worker():
        deal = await _start_and_propose(rig, "crash")
        await rig.skip(4 * DAY)
        assert len(await rig.events(deal, "TouchSent")) == 2
    # the worker is gone between touches; a new one dies once, right after sending touch 3
    DiesAfterSending.died = False
    async with rig.worker(DiesAfterSending):
        await rig.skip(30 * DAY)
        sent = await rig.events(deal, "TouchSent")
    assert DiesAfterSending.died
    assert [e.touch_no for e in sent] == [1, 2, 3, 4, 5, 6, 7]  # type: ignore[union-attr]
    touch_sends = [k for k in rig.outbox.sends if "/touch/" in k]
    assert len(touch_sends) == len(set(touch_sends)) == 7  # the channel was asked once per touch
    assert len([f for f in rig.files(deal) if "_touch_" in f.name]) == 7
    assert len(await rig.outbox_rows(deal, "touch")) == 7


async def test_idle_stage_produces_exactly_the_ladder(rig: Rig, deployed: dict[str, PinnedDefinition]) -> None:
    async with rig.worker():
        deal = new_deal_id("idle")
        await rig.client.start_deal("chase", deal, "olav", fields={"customer": "Fjord AS"})
        await rig.skip(20 * DAY)
        events = await rig.client.events(deal)
        status = await rig.client.status(deal)
    ladder = [e for e in events if e.type in {"SlaBreached", "ReminderSent", "Escalated"}]
    assert [e.type for e in ladder] == ["SlaBreached", "ReminderSent", "Escalated", "Escalated"]
    entered = events[1].at
    d = deployed["chase"].definition
    deadline = add(entered, d.stages[0].reminder.deadline)  # type: ignore[union-attr]
    first = add(deadline, d.stages[0].reminder.escalations[0].after)  # type: ignore[union-attr]
    second = add(first, d.stages[0].reminder.escalations[1].after)  # type: ignore[union-attr]
    assert [e.due_at for e in ladder] == [deadline, deadline, first, second]
    assert all(e.at >= e.due_at for e in ladder)
    reminder, esc1, esc2 = ladder[1], ladder[2], ladder[3]
    assert reminder.to == "olav"  # type: ignore[union-attr]
    assert (esc1.level, esc1.to, esc1.reassigned_to) == (1, "manager-of-olav", None)  # type: ignore[union-attr]
    assert (esc2.level, esc2.reassigned_to) == (2, "maria")  # type: ignore[union-attr]
    assert status.state.owner == "maria" and status.state.sla_breaches == 1
    notes = await rig.outbox_rows(deal, "notification")
    assert len(notes) == 3 and {r["status"] for r in notes} == {"sent"}


async def test_leaving_the_stage_cancels_the_ladder(rig: Rig) -> None:
    async with rig.worker():
        deal = new_deal_id("prompt")
        await rig.client.start_deal("chase", deal, "olav", fields={"customer": "Fjord AS"})
        await rig.skip(DAY)
        await rig.client.complete_stage(deal, "qualify", actor="olav")
        await rig.client.record_response(deal, actor="olav", kind="meeting_booked")
        await rig.skip(20 * DAY)
        events = await rig.client.events(deal)
    assert not [e for e in events if e.type in {"SlaBreached", "ReminderSent", "Escalated"}]
    # the meeting was booked as the cadence was starting: it never starts, or it stops at once;
    # either way nothing is sent
    assert [e.type for e in events if e.type == "BuyerResponded"] == ["BuyerResponded"]
    assert not [e for e in events if e.type == "TouchSent"]
    started = [e for e in events if e.type == "CadenceStarted"]
    stopped = [e.reason for e in events if e.type == "CadenceStopped"]
    assert (started, stopped) == ([], []) or (len(started), stopped) == (1, ["meeting_booked"])


async def test_no_loss_before_the_minimum_touches(rig: Rig) -> None:
    async with rig.worker():
        deal = await _start_and_propose(rig, "persist")
        with pytest.raises(Refused) as caught:
            await rig.client.lose(deal, "gave-up", actor="olav")
        assert caught.value.code == "too_few_touches" and "asks for 3" in caught.value.message
        await rig.skip(6 * DAY + timedelta(hours=12))
        lost = await rig.client.lose(deal, "gave-up", actor="olav")
        assert lost.status == "lost"
        result = await rig.env.client.get_workflow_handle(f"deal-{deal}").result()
        events = await rig.client.events(deal)
    assert result["status"] == "lost"
    assert [e.reason for e in events if e.type == "CadenceStopped"] == ["deal_ended"]
    assert len([e for e in events if e.type == "TouchSent"]) == 3


async def test_proposal_is_generated_on_entering_the_stage(rig: Rig) -> None:
    async with rig.worker():
        deal = await _start_and_propose(rig, "doc")
        await rig.skip(timedelta(hours=1))
        generated = await rig.events(deal, "ProposalGenerated")
    assert len(generated) == 1
    doc = generated[0]
    # recorded inside the proposals directory, not by the server's path
    assert Path(doc.html_path).parent == Path(deal) and doc.html_path.endswith(".html")  # type: ignore[union-attr]
    md = (rig.proposals / doc.path).read_text()  # type: ignore[union-attr]
    assert md.startswith("# Offer for Fjord AS") and f"deal {deal}" in md and "Value: 1,200.00" in md
    assert (rig.proposals / doc.html_path).read_text().count("<li>") == 2  # type: ignore[union-attr]
    import hashlib

    assert doc.content_hash == hashlib.sha256(md.encode()).hexdigest()  # type: ignore[union-attr]


def _days_off_process(days_off: list[date]) -> PinnedDefinition:
    """Every weekday works, except the days off: a reminder and a two-touch cadence over them."""
    return pin(
        parse(
            {
                "name": "days-off",
                "timezone": "UTC",
                "business_days": [0, 1, 2, 3, 4, 5, 6],
                "holidays": {"dates": days_off},
                "phases": [{"id": "p", "title": "Only phase"}],
                "stages": [
                    {
                        "id": "wait",
                        "title": "Wait",
                        "phase": "p",
                        "probability": 0.1,
                        "reminder": {"deadline": "1 business day"},
                        "cadence": "nudge",
                    },
                    {"id": "close", "title": "Close", "phase": "p", "probability": 0.9},
                ],
                "outcomes": {"won": {}, "lost": {"reasons": ["gone"]}},
                "cadences": [
                    {
                        "id": "nudge",
                        "min_touches": 2,
                        "touches": [
                            {"channel": "email", "template": "one", "delay": "1 business day"},
                            {"channel": "email", "template": "two", "delay": "1 business day"},
                        ],
                    }
                ],
            }
        )
    )


async def test_reminders_and_both_sides_of_a_cadence_skip_the_pinned_days_off(rig: Rig) -> None:
    """The deal places the deadline and the first touch, the cadence's child the second: both
    from the dates pinned in the definition (the child gets them in its input)."""
    today = (await rig.env.get_current_time()).astimezone(UTC).date()
    off = [today + timedelta(days=n) for n in (1, 2, 3, 5)]
    pinned = _days_off_process(off)
    await registry.deploy(rig.pool, pinned, deployed_by="tests")
    async with rig.worker():
        deal = new_deal_id("off")
        await rig.client.start_deal("days-off", deal, "olav", fields={"customer": "Fjord AS"}, version=pinned.version)
        await rig.skip(10 * DAY)
        events = await rig.client.events(deal)
    entered = events[1].at
    breached = [e.due_at for e in events if e.type == "SlaBreached"]
    scheduled = [e.due_at for e in events if e.type == "TouchScheduled"]
    assert breached == [BusinessCalendar.of(pinned.definition).add(entered, Duration.model_validate("1 business day"))]
    assert [due.date() for due in [*breached, *scheduled]] == [today + timedelta(days=n) for n in (4, 4, 6)]
    assert len([e for e in events if e.type == "TouchSent"]) == 2
