"""The deal workflow: one durable execution per deal, walking the stages of its pinned definition.

It holds no rule about sales: decisions come from `domain.decide`, the state from the fold in
`domain.state`, what is due when from `domain.schedule`, what an event calls for from
`domain.effects`. What it adds is durability. Rep actions are updates whose validators run the
same decision as their handlers, so a refused request never enters history. The main loop
sleeps until the next deadline or new work, runs the effects that events call for, handles
what is due, appends to the event log, and then continues as new or ends.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TypeVar

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from definitions.model import ProcessDefinition
    from domain import access, decide, imports, reminders
    from domain.commands import (
        REVISION,
        ActionResult,
        Command,
        CompleteStage,
        DealInput,
        LoseDeal,
        MigrateDeal,
        MoveStage,
        RecordResponse,
        WinDeal,
    )
    from domain.effects import Effect, HandOver, MakeProposal, Notify, StartCadence, StopCadence
    from domain.events import DealEvent
    from domain.reminders import Rung
    from domain.schedule import URGENT, Due, Schedule, schedule
    from domain.state import DealState
    from workflows.alarm import Alarm
    from workflows.cadence import CadenceReport
    from workflows.cadence_lifecycle import CadenceLifecycle
    from workflows.follow_ons import start_follow_on
    from workflows.handoffs import hand_over
    from workflows.ledger import Ledger
    from workflows.log_batcher import LogBatcher
    from workflows.outbound import Notifier, propose

C = TypeVar("C", bound=Command)
# how long a rep's win, loss or migration waits for its events to reach the log; with the
# database down the append goes on retrying, and the rep has the answer after this
URGENT_LOG_WAIT = timedelta(seconds=2)
Decision = Callable[[DealState, ProcessDefinition, C, datetime], list[DealEvent]]


class RetiredRevision(RuntimeError):
    """A run of a revision this code no longer has (docs/revisions.md).

    Not an `ApplicationError`: it fails the workflow task, not the deal, so the run waits,
    unharmed, for a worker that still has its revision.
    """


@workflow.defn(name="Deal")
class DealWorkflow:
    @workflow.init
    def __init__(self, input: DealInput) -> None:
        if input.revision != REVISION:
            raise RetiredRevision(f"deal workflow revision {input.revision} is retired; this worker runs {REVISION}")
        self._ledger = Ledger(input.pinned, list(input.carried_events))
        self._scale = input.time_scale
        self._log = LogBatcher(self._ledger, input.persisted_seq, input.log_flush_seconds)
        self._cadence = CadenceLifecycle(self._ledger, input.pending_cadence, input.time_scale)
        self._alarm = Alarm()
        self._notifier = Notifier(self._ledger)
        self._upgrade_requested = False
        self._imported = input.start.imported  # what an imported deal sends for its past
        if not self._ledger.events:
            # recorded here, not in run(): an update may arrive in the very first workflow task,
            # and its validator runs before run() does
            p = input.pinned
            if input.start.imported is None:
                self._ledger.record(decide.start(input.start, p.definition, p.version, p.content_hash, workflow.now()))
            else:
                # a deal from a CRM export: its history is told, and only entering the stage it
                # is at calls for anything (its cadence, its proposal); its reminder counts from
                # when it really entered that stage
                start = input.start
                told = imports.history_events(
                    p.definition,
                    input.start.imported,
                    deal_id=start.deal_id,
                    version=p.version,
                    content_hash=p.content_hash,
                    owner=start.owner,
                    value=start.value,
                    fields=start.fields,
                    team=start.team,
                )
                self._ledger.record(told[:-1], effects=False)
                self._ledger.record(told[-1:], effects=not imports.mutes_entry(start.imported))

    @workflow.run
    async def run(self, input: DealInput) -> DealState:
        effects = self._ledger.effects
        while True:
            plan = self._schedule()
            # one alarm for the earliest deadline, kept while that deadline stands
            self._alarm.set(plan.next_at)
            rung, flush = plan.rung, plan.at(Due.LOG_FLUSH)
            if not self._has_work(rung, flush):
                await workflow.wait_condition(functools.partial(self._rang_or_work, rung, flush))
            # work already waiting goes first: a start, an outcome or a migration to the log (the
            # rep's call waits for it), then effects, before the append that records them
            if self._alarm.rang and not effects:
                self._alarm.spend()
                await self._handle_due(plan)
            elif self._log.holds_urgent():
                await self._flush()
            elif effects:
                await self._run(effects.pop(0))
            elif self._log.needed(continuing=self._must_continue()):
                await self._flush()
            elif self._done() or self._must_continue():
                await workflow.wait_condition(self._quiet)
                if effects or self._log.unpersisted():
                    continue
                if not self._done():
                    workflow.continue_as_new(self._carried(input))
                if await self._cadence.wound_down():
                    return self._ledger.state

    # --- rep actions ---------------------------------------------------------------------------

    @workflow.update
    async def complete_stage(self, cmd: CompleteStage) -> ActionResult:
        return await self._act(cmd, decide.complete)

    @complete_stage.validator
    def _check_complete(self, cmd: CompleteStage) -> None:
        self._check(cmd, decide.complete)

    @workflow.update
    async def move(self, cmd: MoveStage) -> ActionResult:
        return await self._act(cmd, decide.move)

    @move.validator
    def _check_move(self, cmd: MoveStage) -> None:
        self._check(cmd, decide.move)

    @workflow.update
    async def win(self, cmd: WinDeal) -> ActionResult:
        return await self._act(cmd, decide.win)

    @win.validator
    def _check_win(self, cmd: WinDeal) -> None:
        self._check(cmd, decide.win)

    @workflow.update
    async def lose(self, cmd: LoseDeal) -> ActionResult:
        return await self._act(cmd, decide.lose)

    @lose.validator
    def _check_lose(self, cmd: LoseDeal) -> None:
        self._check(cmd, decide.lose)

    @workflow.update
    async def record_response(self, cmd: RecordResponse) -> ActionResult:
        return await self._act(cmd, decide.respond)

    @record_response.validator
    def _check_response(self, cmd: RecordResponse) -> None:
        self._check(cmd, decide.respond)

    @workflow.update
    async def migrate(self, cmd: MigrateDeal) -> ActionResult:
        def then_switch(state: DealState, d: ProcessDefinition, cmd: MigrateDeal, at: datetime) -> list[DealEvent]:
            events = decide.migrate(state, d, cmd, at)
            # from here on the deal runs the new version's stages, reminders and cadences
            self._ledger.pinned = cmd.to
            return events

        return await self._act(cmd, then_switch)

    @migrate.validator
    def _check_migrate(self, cmd: MigrateDeal) -> None:
        self._check(cmd, decide.migrate)

    # --- signals -------------------------------------------------------------------------------

    @workflow.signal
    def cadence_report(self, report: CadenceReport) -> None:
        self._cadence.record(report)

    @workflow.signal
    def upgrade(self) -> None:
        """Continue as new at the next quiet point, so the deal runs the latest revision."""
        self._upgrade_requested = True

    # --- requests ------------------------------------------------------------------------------

    def _result(self, request_id: str) -> ActionResult | None:
        return ActionResult.of(self._ledger.state, request_id)

    def _check(self, cmd: C, decision: Decision[C]) -> None:
        if cmd.request_id in self._ledger.state.requests:
            return  # a repeat: accepted, answered from the record, records nothing
        self._allowed(cmd)
        self._decide(cmd, decision)

    async def _act(self, cmd: C, decision: Decision[C]) -> ActionResult:
        repeat = self._result(cmd.request_id)
        if repeat is not None:
            return repeat
        self._allowed(cmd)
        # decided again: another update may have changed the state since validation
        events = self._decide(cmd, decision)
        self._ledger.record(events)
        result = self._result(cmd.request_id)
        assert result is not None
        if any(isinstance(e, URGENT) for e in events):
            # an outcome or a migration is in the log when the rep's call returns
            await self._log.logged(result.last_seq, within=URGENT_LOG_WAIT)
        return result

    def _decide(self, cmd: C, decision: Decision[C]) -> list[DealEvent]:
        try:
            return decision(self._ledger.state, self._ledger.pinned.definition, cmd, workflow.now())
        except decide.Refusal as refusal:
            raise ApplicationError(refusal.message, refusal.details, type=refusal.code, non_retryable=True) from None

    def _allowed(self, cmd: Command) -> None:
        action: access.Action = "migrate" if isinstance(cmd, MigrateDeal) else "act"
        try:
            access.check(cmd.claim, cmd.actor, action, self._ledger.state)
        except access.Forbidden as denied:
            raise ApplicationError(denied.message, {"actor": cmd.actor}, type="forbidden", non_retryable=True) from None

    # --- the loop's parts ----------------------------------------------------------------------

    def _schedule(self) -> Schedule:
        return schedule(
            self._ledger.pinned.definition,
            self._ledger.state,
            cadence_launch=self._cadence.launch_due,
            log_flush=self._log.due(),
            time_scale=self._scale,
        )

    async def _handle_due(self, plan: Schedule) -> None:
        """Handle the first deadline that is due and still stands (the loop comes back for the rest)."""
        now = workflow.now()
        for deadline in plan.due(now):
            match deadline.kind:
                case Due.FOLLOW_ON:
                    assert deadline.follow_on is not None
                    await start_follow_on(
                        self._ledger, deadline.follow_on, time_scale=self._scale, flush_seconds=self._log.flush_seconds
                    )
                case Due.CADENCE_LAUNCH:
                    await self._cadence.launch()
                case Due.REMINDER:
                    if self._ladder_moved(deadline.rung):
                        continue
                    assert deadline.rung is not None
                    state, rung = self._ledger.state, deadline.rung
                    muted = imports.mutes_rung(self._imported, state.stage_entered_at, rung.due_at)
                    self._ledger.record(decide.remind(state, rung, now), effects=not muted)
                case Due.LOG_FLUSH:
                    await self._flush()
            return

    async def _run(self, effect: Effect) -> None:
        match effect:
            case HandOver():
                await hand_over(self._ledger, effect)
            case Notify():
                self._notifier.send(effect)
            case MakeProposal():
                await propose(self._ledger, effect)
            case StartCadence():
                await self._cadence.start(effect.cadence)
            case StopCadence():
                await self._cadence.stop(effect.reason)

    async def _flush(self) -> None:
        await self._log.flush()

    def _has_work(self, rung: Rung | None, flush: datetime | None) -> bool:
        """Something to do now, or a deadline to wait for that is not the one being waited for."""
        return (
            bool(self._ledger.effects)
            or self._log.needed(continuing=self._must_continue())
            or self._done()
            or self._must_continue()
            or self._ladder_moved(rung)
            or self._log.due() != flush
        )

    def _rang_or_work(self, rung: Rung | None, flush: datetime | None) -> bool:
        return self._alarm.rang or self._has_work(rung, flush)

    def _ladder_moved(self, rung: Rung | None) -> bool:
        """The next reminder rung is no longer `rung`: the deal moved on, or the rung fired."""
        return reminders.next_rung(self._ledger.pinned.definition, self._ledger.state, self._scale) != rung

    def _quiet(self) -> bool:
        """No update handler running and no notification on its way."""
        return workflow.all_handlers_finished() and self._notifier.idle()

    def _done(self) -> bool:
        return self._ledger.state.may_end

    def _must_continue(self) -> bool:
        return self._upgrade_requested or workflow.info().is_continue_as_new_suggested()

    def _carried(self, input: DealInput) -> DealInput:
        """The next run's input: the whole state, on the latest revision."""
        return DealInput(
            start=input.start,
            pinned=self._ledger.pinned,
            carried_events=self._ledger.events,
            persisted_seq=self._log.persisted_seq,
            time_scale=self._scale,
            log_flush_seconds=self._log.flush_seconds,
            pending_cadence=self._cadence.pending,
            revision=REVISION,
        )
