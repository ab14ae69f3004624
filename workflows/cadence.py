"""The follow-up cadence: a child workflow of the deal that makes the touches.

The deal launches it when the first touch falls due (having recorded that touch as scheduled
itself), so a cadence stopped before its first touch costs no workflow at all. It has its own
history, so a long cadence never bloats the deal's. It reports every step to the
deal by signal (the deal records the events, keeping one sequence per deal), and stops at once
when the deal signals `stop` (buyer replied, meeting booked, deal ended, unsubscribed, bounced).
Each touch is an activity with retries, which renders the touch's template and sends it; a
channel that fails for good, or a template that cannot be rendered with the deal's values, is
recorded as a failed touch and the cadence moves on to the next touch.
"""

from __future__ import annotations

import contextlib
from datetime import date, datetime, timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict
from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, FailureError

with workflow.unsafe.imports_passed_through():
    from definitions.durations import Duration
    from definitions.model import Cadence
    from domain.activity_io import SEND_MESSAGE, SEND_TIMEOUT, OutgoingMessage, SentMessage
    from domain.calendar import BusinessCalendar, compressed

TOUCH_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=2),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=5),
    maximum_attempts=6,  # transient failures are retried; then the touch is recorded as failed
    non_retryable_error_types=["PermanentChannelError"],
)


class CadenceInput(BaseModel):
    model_config = ConfigDict(frozen=True)

    deal_id: str
    parent_workflow_id: str
    cadence_run: str
    cadence: Cadence
    timezone: str
    business_days: list[int]
    recipient: str
    values: dict[str, str] = {}
    time_scale: float = 1.0
    # set when the deal scheduled (and recorded) the first touch itself and launches this
    # workflow only when that touch falls due (domain.commands.PendingCadence)
    first_due: datetime | None = None
    # the days off pinned in the deal's definition; absent from inputs recorded before holidays
    # existed, which therefore replay as they ran
    holidays: list[date] = []

    @property
    def calendar(self) -> BusinessCalendar:
        return BusinessCalendar(self.timezone, frozenset(self.business_days), frozenset(self.holidays))


class CadenceReport(BaseModel):
    model_config = ConfigDict(frozen=True)

    kind: Literal["scheduled", "sent", "failed", "stopped", "completed"]
    cadence_run: str
    touch_no: int = 0
    channel: str = ""
    due_at: datetime | None = None
    message_id: str = ""
    error: str = ""
    reason: str = ""
    touches_sent: int = 0
    # when it happened, by the cadence's clock: the deal records this, not the time it happened
    # to process the signal, so the event is the same whichever workflow task applies it
    at: datetime | None = None


class CadenceOutcome(BaseModel):
    touches_sent: int
    touches_failed: int
    stopped: str | None


def touch_due(previous: datetime, delay: Duration, calendar: BusinessCalendar, time_scale: float) -> datetime:
    """When a touch falls due: its delay after `previous` (business days skip the calendar's days
    off), compressed by the time scale in simulations."""
    real_due = calendar.add(previous, delay)
    return compressed(previous, real_due, time_scale)


@workflow.defn(name="FollowUpCadence")
class FollowUpCadence:
    def __init__(self) -> None:
        self._stop: str | None = None
        self._sent = 0
        self._failed = 0

    @workflow.signal
    def stop(self, reason: str) -> None:
        if self._stop is None:
            self._stop = reason

    @workflow.run
    async def run(self, inp: CadenceInput) -> CadenceOutcome:
        previous = workflow.now()
        for touch_no, touch in enumerate(inp.cadence.touches, start=1):
            if touch_no == 1 and inp.first_due is not None:
                due = inp.first_due  # the deal has recorded it
            else:
                due = touch_due(previous, touch.delay, inp.calendar, inp.time_scale)
                await self._report(
                    inp,
                    CadenceReport(
                        kind="scheduled",
                        cadence_run=inp.cadence_run,
                        touch_no=touch_no,
                        channel=touch.channel,
                        due_at=due,
                    ),
                )
            wait = (due - workflow.now()).total_seconds()
            if wait > 0 and self._stop is None:
                with contextlib.suppress(TimeoutError):  # the delay passed without a stop
                    await workflow.wait_condition(lambda: self._stop is not None, timeout=wait)
            if self._stop is not None:
                return await self._stopped(inp)
            await self._touch(inp, touch_no, touch.channel, touch.template)
            previous = workflow.now()
            if self._stop is not None:
                return await self._stopped(inp)
        await self._report(inp, CadenceReport(kind="completed", cadence_run=inp.cadence_run, touches_sent=self._sent))
        return CadenceOutcome(touches_sent=self._sent, touches_failed=self._failed, stopped=None)

    async def _touch(self, inp: CadenceInput, touch_no: int, channel: str, template: str) -> None:
        # the send activity renders the template (domain.touches): one it cannot render fails
        # there, as this touch, and is recorded below like a channel's permanent failure
        message = OutgoingMessage(
            deal_id=inp.deal_id,
            effect_key=f"touch/{inp.cadence_run}/{touch_no}",
            kind="touch",
            channel=channel,
            recipient=inp.recipient,
            touch_template=template,
            template_values=inp.values,
            cadence_run=inp.cadence_run,
            touch_no=touch_no,
        )
        try:
            sent: SentMessage = await workflow.execute_activity(
                SEND_MESSAGE,
                message,
                result_type=SentMessage,
                start_to_close_timeout=SEND_TIMEOUT,
                retry_policy=TOUCH_RETRY,
            )
        except ActivityError as exc:
            self._failed += 1
            cause = exc.cause
            error = cause.message if isinstance(cause, ApplicationError) else str(cause or exc)
            await self._report(
                inp,
                CadenceReport(
                    kind="failed", cadence_run=inp.cadence_run, touch_no=touch_no, channel=channel, error=error
                ),
            )
            return
        self._sent += 1
        await self._report(
            inp,
            CadenceReport(
                kind="sent", cadence_run=inp.cadence_run, touch_no=touch_no, channel=channel, message_id=sent.message_id
            ),
        )

    async def _stopped(self, inp: CadenceInput) -> CadenceOutcome:
        await self._report(inp, CadenceReport(kind="stopped", cadence_run=inp.cadence_run, reason=self._stop or ""))
        return CadenceOutcome(touches_sent=self._sent, touches_failed=self._failed, stopped=self._stop)

    async def _report(self, inp: CadenceInput, report: CadenceReport) -> None:
        try:
            stamped = report.model_copy(update={"at": workflow.now()})
            await workflow.get_external_workflow_handle(inp.parent_workflow_id).signal("cadence_report", stamped)
        except FailureError:
            # the deal has ended: nobody to report to, and nothing left to chase
            if self._stop is None:
                self._stop = "deal_ended"
