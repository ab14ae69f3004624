"""The follow-up cadence as the deal sees it: started, launched, reported on, stopped.

Starting a cadence records it and its first touch at once, but launches its child workflow only
when that touch falls due: most cadences are stopped before then (the buyer answers, the deal
moves on or ends), and a stop before the launch costs one event instead of a child workflow and
its signals. Once launched, the child reports each step by signal and the deal records it as its
own event, keeping one sequence per deal.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from temporalio import workflow
from temporalio.exceptions import FailureError
from temporalio.workflow import ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    from definitions.model import Cadence
    from domain.calendar import BusinessCalendar
    from domain.commands import PendingCadence
    from domain.events import (
        BuyerResponded,
        CadenceCompleted,
        CadenceStarted,
        CadenceStopped,
        StageEntered,
        TouchFailed,
        TouchScheduled,
        TouchSent,
    )
    from workflows.cadence import CadenceInput, CadenceReport, FollowUpCadence, touch_due
    from workflows.ledger import Ledger

# the event each kind of report becomes, and the report's fields it carries
REPORTED: dict[str, tuple[type[Any], tuple[str, ...]]] = {
    "scheduled": (TouchScheduled, ("touch_no", "channel", "due_at")),
    "sent": (TouchSent, ("touch_no", "channel", "message_id")),
    "failed": (TouchFailed, ("touch_no", "channel", "error")),
    "stopped": (CadenceStopped, ("reason",)),
    "completed": (CadenceCompleted, ("touches_sent",)),
}
# how long an ending deal waits for its cadence to report that it stopped
STOP_GRACE = timedelta(minutes=1)
# the child outlives the deal's continue-as-new; it is stopped by signal
CHILD_POLICY = ParentClosePolicy.ABANDON


class CadenceLifecycle:
    def __init__(self, ledger: Ledger, pending: PendingCadence | None, time_scale: float) -> None:
        self._ledger = ledger
        self.pending = pending
        self._scale = time_scale

    @property
    def launch_due(self) -> datetime | None:
        return self.pending.due_at if self.pending else None

    async def start(self, cadence_id: str) -> None:
        state, d = self._ledger.state, self._ledger.pinned.definition
        if state.is_finished or state.cadence is not None:
            return
        cadence = d.cadence(cadence_id)
        stops = [s.value for s in cadence.stop_on]
        if self._answered_since_entry(stops):
            return  # the buyer already answered since the stage was entered: nothing to chase
        run = f"cadence-{state.deal_id}/{cadence.id}#{state.cadence_runs + 1}"
        # a valid definition gives every cadence at least one touch (min_touches >= 1)
        first = cadence.touches[0]
        due = touch_due(workflow.now(), first.delay, BusinessCalendar.of(d), self._scale)
        self._ledger.note(CadenceStarted, cadence=cadence.id, cadence_run=run, touches=len(cadence.touches))
        self._ledger.note(TouchScheduled, cadence_run=run, touch_no=1, channel=first.channel, due_at=due)
        self.pending = PendingCadence(cadence_run=run, cadence=cadence, due_at=due)

    async def launch(self) -> None:
        """The first touch of the pending cadence is due: from here its child workflow runs it."""
        pending, self.pending = self.pending, None
        if pending is None or pending.cadence_run != self._ledger.state.cadence:
            return
        await workflow.start_child_workflow(
            FollowUpCadence.run,
            self._input(pending.cadence_run, pending.cadence, first_due=pending.due_at),
            id=pending.cadence_run,
            parent_close_policy=CHILD_POLICY,
        )

    async def stop(self, reason: str) -> None:
        run = self._ledger.state.cadence
        if run is None or self._stop_unlaunched(run, reason):
            return
        try:
            await workflow.get_external_workflow_handle(run).signal(FollowUpCadence.stop, reason)
        except FailureError:
            # it had already finished; its last report is on its way or recorded
            workflow.logger.info("cadence %s had already ended", run)

    async def wound_down(self) -> bool:
        """Before the deal's workflow ends, its cadence reports that it stopped (or is presumed
        to). False when that recorded events, which must be appended before the end."""
        run = self._ledger.state.cadence
        if run is None:
            return True
        if self._stop_unlaunched(run, "deal_ended", stage=None):
            return False
        try:
            await workflow.wait_condition(lambda: self._ledger.state.cadence is None, timeout=STOP_GRACE)
        except TimeoutError:
            self._ledger.note(CadenceStopped, stage=None, cadence_run=run, reason="deal_ended")
        return False

    def record(self, report: CadenceReport) -> None:
        """A step the child reports, recorded as the deal's own event at the child's time."""
        run = report.cadence_run
        if run != self._ledger.state.cadence:
            return  # a cadence this deal no longer runs (already stopped or completed)
        cls, names = REPORTED[report.kind]
        self._ledger.note(cls, at=report.at, cadence_run=run, **{name: getattr(report, name) for name in names})

    def _input(self, run: str, cadence: Cadence, first_due: datetime | None = None) -> CadenceInput:
        state, d = self._ledger.state, self._ledger.pinned.definition
        return CadenceInput(
            deal_id=state.deal_id,
            parent_workflow_id=workflow.info().workflow_id,
            cadence_run=run,
            cadence=cadence,
            timezone=d.timezone,
            business_days=d.business_days,
            holidays=d.holiday_dates,
            recipient=state.fields.get("contact") or state.fields.get("customer") or f"buyer of {state.deal_id}",
            values=self._ledger.values(),
            time_scale=self._scale,
            first_due=first_due,
        )

    def _answered_since_entry(self, stops: list[str]) -> str | None:
        """The buyer response that stops a cadence, if one came since the deal entered its stage."""
        for event in reversed(self._ledger.events):
            if isinstance(event, StageEntered):
                return None
            if isinstance(event, BuyerResponded) and event.kind in stops:
                return event.kind
        return None

    def _stop_unlaunched(self, run: str, reason: str, **fields: Any) -> bool:
        """Stop `run` with one event if its child was never launched (nothing to signal)."""
        if self.pending is None or self.pending.cadence_run != run:
            return False
        self.pending = None
        self._ledger.note(CadenceStopped, cadence_run=run, reason=reason, **fields)
        return True
