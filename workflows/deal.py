"""The deal workflow: one durable execution per deal, walking the stages of its pinned definition.

The workflow holds no logic of its own about sales: decisions come from `domain.decide`, state
from `domain.state.fold`, the reminder ladder from `domain.reminders`. What it adds is
durability: updates validated before they enter history; a main loop that sleeps until the next
reminder rung, carries events to the event log in batches gathered over a flush window (at least
once, keyed so the log has each exactly once; an outcome's batch inside the rep's own workflow
task) and runs the effects that events call for (notifications, proposals, starting and stopping
the follow-up cadence); search attributes kept current with each batch; continue-as-new with the
whole state.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel
from temporalio import workflow
from temporalio.common import RetryPolicy, SearchAttributeKey, SearchAttributePair, TypedSearchAttributes
from temporalio.exceptions import ActivityError, ApplicationError, FailureError, WorkflowAlreadyStartedError
from temporalio.exceptions import TimeoutError as ActivityTimeoutError
from temporalio.workflow import ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    from definitions.loader import PinnedDefinition
    from definitions.model import Cadence, StopCondition
    from domain import access, decide, reminders
    from domain.activity_io import (
        APPEND_EVENTS,
        APPEND_TIMEOUT,
        GENERATE_PROPOSAL,
        LOCAL_RETRY_THRESHOLD,
        PREPARE_FOLLOW_ON,
        PROPOSAL_TIMEOUT,
        SEND_MESSAGE,
        SEND_TIMEOUT,
        AppendEvents,
        DealSnapshot,
        FollowOnRequest,
        OutgoingMessage,
        PreparedFollowOn,
        ProposalDocument,
        ProposalRequest,
        SentMessage,
    )
    from domain.commands import (
        REVISION,
        ActionResult,
        Command,
        CompleteStage,
        DealInput,
        LoseDeal,
        MigrateDeal,
        MissingFact,
        MoveStage,
        PendingCadence,
        RecordResponse,
        StartDeal,
        WinDeal,
        workflow_id,
    )
    from domain.events import (
        BuyerResponded,
        CadenceCompleted,
        CadenceStarted,
        CadenceStopped,
        DealEvent,
        DealLost,
        DealWon,
        Escalated,
        FollowOnFailed,
        FollowOnStarted,
        MigratedToVersion,
        ProposalFailed,
        ProposalGenerated,
        ReminderSent,
        StageEntered,
        TouchFailed,
        TouchScheduled,
        TouchSent,
    )
    from domain.state import DealState, FollowOn, apply, fold
    from workflows.cadence import CadenceInput, CadenceReport, FollowUpCadence, touch_due

DEAL_STAGE = SearchAttributeKey.for_keyword("DealStage")
DEAL_OWNER = SearchAttributeKey.for_keyword("DealOwner")
DEAL_STATUS = SearchAttributeKey.for_keyword("DealStatus")
PROCESS_NAME = SearchAttributeKey.for_keyword("ProcessName")
PROCESS_VERSION = SearchAttributeKey.for_keyword("ProcessVersion")
SEARCH_ATTRIBUTES = (DEAL_STAGE, DEAL_OWNER, DEAL_STATUS, PROCESS_NAME, PROCESS_VERSION)

APPEND_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=1),
    maximum_attempts=0,  # the log must get every event: retry until the database is back
)
NOTIFY_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=2),
    maximum_interval=timedelta(minutes=5),
    maximum_attempts=10,
    non_retryable_error_types=["PermanentChannelError"],
)
PROPOSAL_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    maximum_interval=timedelta(minutes=1),
    maximum_attempts=5,
    non_retryable_error_types=["MissingProposalFacts", "InvalidTemplate"],
)
FOLLOW_ON_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    maximum_interval=timedelta(minutes=1),
    maximum_attempts=5,
    non_retryable_error_types=["UnknownProcess"],
)
CADENCE_STOP_GRACE = timedelta(minutes=1)
# however short the flush window, a batch never grows past this many events
MAX_LOG_BATCH = 100
# events that change what a deal is (its outcome, its version) reach the log, and so the metrics
# and the next migration plan, without waiting for the flush window
URGENT = (DealWon, DealLost, MigratedToVersion)


_CHILD: dict[str, Any] = {
    "parent_close_policy": ParentClosePolicy.ABANDON  # it outlives continue-as-new; stopped by signal
}


def search_attributes(state: DealState) -> list[SearchAttributePair[str]]:
    """What the Temporal UI and `temporal workflow list --query` can filter deals on."""
    return [
        SearchAttributePair(DEAL_STAGE, state.stage or state.status),
        SearchAttributePair(DEAL_OWNER, state.owner),
        SearchAttributePair(DEAL_STATUS, state.status),
        SearchAttributePair(PROCESS_NAME, state.process),
        SearchAttributePair(PROCESS_VERSION, state.version),
    ]


def indexed_now() -> list[SearchAttributePair[str]]:
    """The deal's search attributes as Temporal holds them for this run ("" where unset)."""
    held = workflow.info().typed_search_attributes
    return [SearchAttributePair(key, held.get(key) or "") for key in SEARCH_ATTRIBUTES]


def _refused(refusal: decide.Refusal) -> ApplicationError:
    return ApplicationError(refusal.message, refusal.details, type=refusal.code, non_retryable=True)


class Notify(BaseModel):
    seq: int
    to: str
    subject: str


class MakeProposal(BaseModel):
    template: str


class StartCadence(BaseModel):
    cadence: str


class StopCadence(BaseModel):
    reason: str


Effect = Notify | MakeProposal | StartCadence | StopCadence


# how an activity's failure reaches the workflow: wrapped in ActivityError, or for a local
# activity, as the activity's own error (or its timeout) unwrapped
ACTIVITY_FAILURES = (ActivityError, ApplicationError, ActivityTimeoutError)


async def _activity(
    name: str,
    arg: Any,
    *,
    in_task: bool,
    timeout: timedelta,
    retry: RetryPolicy,
    result_type: type | None = None,
) -> Any:
    """Run an activity inside the current workflow task (a local activity) or as a task of its
    own; the same timeout and retry policy either way."""
    if in_task:
        return await workflow.execute_local_activity(
            name,
            arg,
            result_type=result_type,
            start_to_close_timeout=timeout,
            retry_policy=retry,
            local_retry_threshold=LOCAL_RETRY_THRESHOLD,
        )
    return await workflow.execute_activity(
        name, arg, result_type=result_type, start_to_close_timeout=timeout, retry_policy=retry
    )


def _error_text(exc: Exception) -> tuple[str, list[str]]:
    cause = exc.cause if isinstance(exc, ActivityError) else exc
    if isinstance(cause, ApplicationError):
        details = cause.details[0] if cause.details else None
        missing = list(details.get("missing", [])) if isinstance(details, dict) else []
        return cause.message, missing
    return str(cause or exc), []


@workflow.defn(name="Deal")
class DealWorkflow:
    @workflow.init
    def __init__(self, input: DealInput) -> None:
        self._pinned: PinnedDefinition = input.pinned
        self._scale = input.time_scale
        self._events: list[DealEvent] = list(input.carried_events)
        self._state: DealState = fold(self._events)
        self._persisted = input.persisted_seq
        self._effects: list[Effect] = []
        # revision 2: the cadence child starts when its first touch is due, events are gathered
        # for up to log_flush_seconds per append, search attributes follow with each append
        self._lazy_cadence = self._batched_log = input.revision >= 2
        # revision 3: a batch holding an outcome or a migration, and a proposal, are made inside
        # the workflow task that asked for them (local activities), so the rep's answer comes
        # once they are done and neither costs the deal an activity task and a workflow task
        self._in_task = input.revision >= 3
        # what Temporal indexes now: from revision 2, what the client (or the run before) set
        self._indexed: list[SearchAttributePair[str]] = (
            indexed_now() if self._batched_log else search_attributes(self._state)
        )
        self._log_flush_seconds = input.log_flush_seconds
        self._flush_window = timedelta(seconds=input.log_flush_seconds)
        self._pending_cadence: PendingCadence | None = input.pending_cadence
        self._alarm: asyncio.Task[None] | None = None  # revision 2: the loop's one timer
        self._alarm_at: datetime | None = None
        self._rang = False
        if not self._events:
            # recorded here, not in run(): an update may arrive in the very first workflow task,
            # and its validator runs before run() does
            self._record(
                decide.start(
                    input.start,
                    self._pinned.definition,
                    self._pinned.version,
                    self._pinned.content_hash,
                    workflow.now(),
                )
            )

    @workflow.run
    async def run(self, input: DealInput) -> DealState:
        while True:
            rung = reminders.next_rung(self._pinned.definition, self._state, self._scale)
            follow_on = self._next_follow_on()
            launch = self._pending_cadence.due_at if self._pending_cadence else None
            flush = self._flush_due() if self._batched_log else None
            deadlines = [rung.due_at] if rung else []
            deadlines += [follow_on[1]] if follow_on else []
            deadlines += [t for t in (launch, flush) if t is not None]
            if self._batched_log:
                # one alarm for the earliest deadline, kept while that deadline stands (the
                # rep's actions within a batch start and cancel no timers); work already
                # waiting is done first, effects before the append that records them
                self._set_alarm(min(deadlines) if deadlines else None)
                if not self._has_work(rung, flush):
                    await workflow.wait_condition(functools.partial(self._rang_or_work, rung, flush))
                due = self._rang and not self._effects
                if due:  # spent: the next pass sets a new one
                    self._alarm, self._alarm_at, self._rang = None, None, False
            else:
                timeout = None if not deadlines else max(0.0, (min(deadlines) - workflow.now()).total_seconds())
                try:
                    await workflow.wait_condition(functools.partial(self._has_work, rung), timeout=timeout)
                    due = False
                except TimeoutError:
                    due = True
            if due:
                now = workflow.now()
                if follow_on is not None and follow_on[1] <= now:
                    await self._start_follow_on(follow_on[0])
                elif launch is not None and launch <= now:
                    await self._launch_cadence()
                elif rung is not None and rung.due_at <= now and not self._ladder_moved(rung):
                    self._record(decide.remind(self._state, rung, now))
                elif flush is not None and flush <= now:
                    await self._persist()
                continue
            if self._effects:
                await self._run(self._effects.pop(0))
                continue
            if self._flush_needed():
                await self._persist()
                continue
            if not (self._done() or workflow.info().is_continue_as_new_suggested()):
                continue  # only the reminder ladder changed: sleep towards the new rung
            await workflow.wait_condition(workflow.all_handlers_finished)
            if self._effects or self._unpersisted():
                continue
            if self._done():
                if await self._cadence_wound_down():
                    return self._state
                continue
            workflow.continue_as_new(
                DealInput(
                    start=input.start,
                    pinned=self._pinned,
                    carried_events=self._events,
                    persisted_seq=self._persisted,
                    time_scale=self._scale,
                    log_flush_seconds=self._log_flush_seconds,
                    pending_cadence=self._pending_cadence,
                    revision=REVISION,  # a new run: it may take the latest way
                )
            )

    # --- rep actions -----------------------------------------------------------------------

    @workflow.update
    def complete_stage(self, cmd: CompleteStage) -> ActionResult:
        return self._act(cmd, lambda: decide.complete(self._state, self._pinned.definition, cmd, workflow.now()))

    @complete_stage.validator
    def _check_complete(self, cmd: CompleteStage) -> None:
        self._check(cmd, lambda: decide.complete(self._state, self._pinned.definition, cmd, workflow.now()))

    @workflow.update
    def move(self, cmd: MoveStage) -> ActionResult:
        return self._act(cmd, lambda: decide.move(self._state, self._pinned.definition, cmd, workflow.now()))

    @move.validator
    def _check_move(self, cmd: MoveStage) -> None:
        self._check(cmd, lambda: decide.move(self._state, self._pinned.definition, cmd, workflow.now()))

    @workflow.update
    def win(self, cmd: WinDeal) -> ActionResult:
        return self._act(cmd, lambda: decide.win(self._state, self._pinned.definition, cmd, workflow.now()))

    @win.validator
    def _check_win(self, cmd: WinDeal) -> None:
        self._check(cmd, lambda: decide.win(self._state, self._pinned.definition, cmd, workflow.now()))

    @workflow.update
    def lose(self, cmd: LoseDeal) -> ActionResult:
        return self._act(cmd, lambda: decide.lose(self._state, self._pinned.definition, cmd, workflow.now()))

    @lose.validator
    def _check_lose(self, cmd: LoseDeal) -> None:
        self._check(cmd, lambda: decide.lose(self._state, self._pinned.definition, cmd, workflow.now()))

    @workflow.update
    def record_response(self, cmd: RecordResponse) -> ActionResult:
        return self._act(cmd, lambda: decide.respond(self._state, cmd, workflow.now()))

    @record_response.validator
    def _check_response(self, cmd: RecordResponse) -> None:
        self._check(cmd, lambda: decide.respond(self._state, cmd, workflow.now()))

    @workflow.update
    def migrate(self, cmd: MigrateDeal) -> ActionResult:
        def decision() -> list[DealEvent]:
            events = decide.migrate(self._state, self._pinned.definition, cmd, workflow.now())
            # from here on the deal runs the new version's stages, reminders and cadences
            self._pinned = cmd.to
            return events

        return self._act(cmd, decision)

    @migrate.validator
    def _check_migrate(self, cmd: MigrateDeal) -> None:
        self._check(cmd, lambda: decide.migrate(self._state, self._pinned.definition, cmd, workflow.now()))

    @workflow.signal
    def cadence_report(self, report: CadenceReport) -> None:
        """Progress from the follow-up cadence child, recorded as the deal's own events."""
        if report.cadence_run != self._state.cadence:
            return  # a cadence this deal no longer runs (already stopped or completed)
        run = report.cadence_run
        match report.kind:
            case "scheduled":
                assert report.due_at is not None
                event: tuple[type[Any], dict[str, Any]] = (
                    TouchScheduled,
                    {
                        "cadence_run": run,
                        "touch_no": report.touch_no,
                        "channel": report.channel,
                        "due_at": report.due_at,
                    },
                )
            case "sent":
                event = (
                    TouchSent,
                    {
                        "cadence_run": run,
                        "touch_no": report.touch_no,
                        "channel": report.channel,
                        "message_id": report.message_id,
                    },
                )
            case "failed":
                event = (
                    TouchFailed,
                    {"cadence_run": run, "touch_no": report.touch_no, "channel": report.channel, "error": report.error},
                )
            case "stopped":
                event = (CadenceStopped, {"cadence_run": run, "reason": report.reason})
            case "completed":
                event = (CadenceCompleted, {"cadence_run": run, "touches_sent": report.touches_sent})
        cls, fields = event
        self._note(cls, at=report.at, **fields)

    # --- queries ---------------------------------------------------------------------------

    @workflow.query
    def state(self) -> DealState:
        return self._state

    @workflow.query
    def events(self, after_seq: int = 0) -> list[DealEvent]:
        return [e for e in self._events if e.seq > after_seq]

    @workflow.query
    def missing_facts(self) -> list[MissingFact]:
        return decide.missing_facts(self._pinned.definition, self._state)

    @workflow.query
    def definition(self) -> PinnedDefinition:
        return self._pinned

    @workflow.query
    def result_of(self, request_id: str) -> ActionResult | None:
        return self._result(request_id)

    # --- machinery -------------------------------------------------------------------------

    def _result(self, request_id: str) -> ActionResult | None:
        record = self._state.requests.get(request_id)
        if record is None:
            return None
        return ActionResult(
            deal_id=self._state.deal_id,
            request_id=request_id,
            stage=record.stage,
            status=record.status,
            first_seq=record.first_seq,
            last_seq=record.last_seq,
        )

    def _check(self, cmd: Command, decision: Callable[[], list[DealEvent]]) -> None:
        if cmd.request_id in self._state.requests:
            return  # a repeat: accepted, answered from the record, records nothing
        self._allowed(cmd)
        try:
            decision()
        except decide.Refusal as refusal:
            raise _refused(refusal) from None

    def _allowed(self, cmd: Command) -> None:
        action: access.Action = "migrate" if isinstance(cmd, MigrateDeal) else "act"
        try:
            access.check(cmd.claim, cmd.actor, action, self._state)
        except access.Forbidden as denied:
            raise ApplicationError(denied.message, {"actor": cmd.actor}, type="forbidden", non_retryable=True) from None

    def _act(self, cmd: Command, decision: Callable[[], list[DealEvent]]) -> ActionResult:
        repeat = self._result(cmd.request_id)
        if repeat is not None:
            return repeat
        self._allowed(cmd)
        try:
            events = decision()
        except decide.Refusal as refusal:  # another update changed the state since validation
            raise _refused(refusal) from None
        self._record(events)
        result = self._result(cmd.request_id)
        assert result is not None
        return result

    def _record(self, events: list[DealEvent]) -> None:
        for event in events:
            self._state = apply(self._state, event)
            self._events.append(event)
            self._effects.extend(self._effects_of(event))
        if not self._batched_log:
            self._index()

    def _index(self) -> None:
        """Bring the search attributes up to date (in the lean way, with each append: Temporal's
        visibility trails the deal like the projection does, at one upsert per batch)."""
        indexed = search_attributes(self._state)
        if indexed != self._indexed:
            changed = [new for new, old in zip(indexed, self._indexed, strict=True) if new != old]
            workflow.upsert_search_attributes([pair.key.value_set(pair.value) for pair in changed])
            self._indexed = indexed

    def _effects_of(self, event: DealEvent) -> list[Effect]:
        """What the outside world must see happen because of an event (pure, so replay agrees)."""
        d = self._pinned.definition
        running = self._state.cadence
        stop_on = self._stop_on()
        match event:
            case StageEntered(stage=str(stage_id)):
                stage = d.stage(stage_id)
                out: list[Effect] = []
                if stage.proposal_template:
                    out.append(MakeProposal(template=stage.proposal_template))
                if stage.cadence and running is None:
                    out.append(StartCadence(cadence=stage.cadence))
                return out
            case ReminderSent():
                return [Notify(seq=event.seq, to=event.to, subject=f"Reminder: {self._deal_label()} is overdue")]
            case Escalated():
                verb = f"reassigned to {event.reassigned_to}" if event.reassigned_to else "escalated"
                return [
                    Notify(seq=event.seq, to=event.to, subject=f"Escalation {event.level}: {self._deal_label()} {verb}")
                ]
            case MigratedToVersion(stage=str(stage_id)):
                cadence = d.stage(stage_id).cadence
                return [StartCadence(cadence=cadence)] if cadence and running is None else []
            case BuyerResponded(kind=kind) if running and kind in stop_on:
                return [StopCadence(reason=kind)]
            case DealWon() | DealLost() if running and StopCondition.deal_ended in stop_on:
                return [StopCadence(reason=StopCondition.deal_ended.value)]
        return []

    def _stop_on(self) -> list[str]:
        """What stops the running cadence; after a migration its cadence may be gone from the
        definition, and then anything that stops a cadence stops it."""
        if self._state.cadence_id is None:
            return []
        try:
            return [s.value for s in self._pinned.definition.cadence(self._state.cadence_id).stop_on]
        except KeyError:
            return [s.value for s in StopCondition]

    def _deal_label(self) -> str:
        s = self._state
        return f"deal {s.deal_id} ({s.fields.get('customer', s.process)}) at {s.stage}"

    def _values(self) -> dict[str, str]:
        """Everything a template may say: built-ins, deal fields and the facts recorded so far."""
        s = self._state
        values = dict(s.fields)
        for facts in s.facts.values():
            values.update({k: str(v) for k, v in facts.items()})
        builtins = {
            "deal_id": s.deal_id,
            "owner": s.owner,
            "process": s.process,
            "version": s.version,
            "process_title": self._pinned.definition.title or s.process,
            "value": "" if s.value is None else f"{s.value:,.2f}",
        }
        values.update({k: v for k, v in builtins.items() if v})
        return values

    async def _run(self, effect: Effect) -> None:
        match effect:
            case Notify():
                await self._notify(effect)
            case MakeProposal():
                await self._propose(effect)
            case StartCadence():
                await self._start_cadence(effect)
            case StopCadence():
                await self._stop_cadence(effect.reason)

    async def _notify(self, effect: Notify) -> None:
        message = OutgoingMessage(
            deal_id=self._state.deal_id,
            effect_key=f"notify/{effect.seq}",
            kind="notification",
            channel="notify",
            recipient=effect.to,
            subject=effect.subject,
            body=f"{effect.subject}.\n\nOwner: {self._state.owner}\nStage: {self._state.stage}\n",
        )
        try:
            await workflow.execute_activity(
                SEND_MESSAGE,
                message,
                result_type=SentMessage,
                start_to_close_timeout=SEND_TIMEOUT,
                retry_policy=NOTIFY_RETRY,
            )
        except ActivityError as exc:
            workflow.logger.warning("notification %s not delivered: %s", message.effect_key, _error_text(exc)[0])

    async def _propose(self, effect: MakeProposal) -> None:
        template = self._pinned.templates.get(effect.template)
        if template is None:
            self._note(
                ProposalFailed,
                template=effect.template,
                error="template text missing from the pinned definition",
            )
            return
        request = ProposalRequest(
            deal_id=self._state.deal_id,
            version=self._pinned.version,
            template_id=effect.template,
            template=template,
            values=self._values(),
        )
        try:
            doc: ProposalDocument = await _activity(
                GENERATE_PROPOSAL,
                request,
                in_task=self._in_task,
                timeout=PROPOSAL_TIMEOUT,
                retry=PROPOSAL_RETRY,
                result_type=ProposalDocument,
            )
        except ACTIVITY_FAILURES as exc:
            error, missing = _error_text(exc)
            self._note(ProposalFailed, template=effect.template, missing=missing, error=error)
            return
        self._note(
            ProposalGenerated,
            template=effect.template,
            path=doc.path,
            html_path=doc.html_path,
            content_hash=doc.content_hash,
        )

    async def _start_cadence(self, effect: StartCadence) -> None:
        if self._state.is_finished or self._state.cadence is not None:
            return
        d = self._pinned.definition
        cadence = d.cadence(effect.cadence)
        stop_on = [s.value for s in cadence.stop_on]
        if self._answered_since_entry(stop_on):
            return  # the buyer already answered since the stage was entered: nothing to chase
        run = f"cadence-{self._state.deal_id}/{cadence.id}#{self._state.cadence_runs + 1}"
        if self._lazy_cadence and cadence.touches:
            # recorded now, launched when the first touch is due (unless stopped before then)
            first = cadence.touches[0]
            due = touch_due(workflow.now(), first.delay, d.timezone, d.business_days, self._scale)
            self._note(CadenceStarted, cadence=cadence.id, cadence_run=run, touches=len(cadence.touches))
            self._note(TouchScheduled, cadence_run=run, touch_no=1, channel=first.channel, due_at=due)
            self._pending_cadence = PendingCadence(cadence_run=run, cadence=cadence, due_at=due)
            return
        await workflow.start_child_workflow(FollowUpCadence.run, self._cadence_input(run, cadence), id=run, **_CHILD)
        self._note(CadenceStarted, cadence=cadence.id, cadence_run=run, touches=len(cadence.touches))
        answered = self._answered_since_entry(stop_on)
        if answered:  # the answer came in while the cadence was being started: stop it at once
            self._effects.append(StopCadence(reason=answered))

    def _cadence_input(self, run: str, cadence: Cadence, first_due: datetime | None = None) -> CadenceInput:
        d, fields = self._pinned.definition, self._state.fields
        return CadenceInput(
            deal_id=self._state.deal_id,
            parent_workflow_id=workflow.info().workflow_id,
            cadence_run=run,
            cadence=cadence,
            timezone=d.timezone,
            business_days=d.business_days,
            recipient=fields.get("contact") or fields.get("customer") or f"buyer of {self._state.deal_id}",
            values=self._values(),
            time_scale=self._scale,
            first_due=first_due,
        )

    async def _launch_cadence(self) -> None:
        """The first touch of a pending cadence is due: from here its child workflow runs it."""
        pending, self._pending_cadence = self._pending_cadence, None
        if pending is None or pending.cadence_run != self._state.cadence:
            return
        cadence_input = self._cadence_input(pending.cadence_run, pending.cadence, first_due=pending.due_at)
        await workflow.start_child_workflow(FollowUpCadence.run, cadence_input, id=pending.cadence_run, **_CHILD)

    def _answered_since_entry(self, stop_on: list[str]) -> str | None:
        """The buyer response that stops a cadence, if one came since the deal entered its stage."""
        for event in reversed(self._events):
            if isinstance(event, StageEntered):
                return None
            if isinstance(event, BuyerResponded) and event.kind in stop_on:
                return event.kind
        return None

    async def _stop_cadence(self, reason: str) -> None:
        run = self._state.cadence
        if run is None:
            return
        if self._stop_unlaunched(run, reason):
            return
        try:
            await workflow.get_external_workflow_handle(run).signal(FollowUpCadence.stop, reason)
        except FailureError:
            # it had already finished; its last report is on its way or recorded
            workflow.logger.info("cadence %s had already ended", run)

    def _stop_unlaunched(self, run: str, reason: str, **fields: Any) -> bool:
        """Stop `run` with one event if its child was never launched (nothing to signal)."""
        if self._pending_cadence is None or self._pending_cadence.cadence_run != run:
            return False
        self._pending_cadence = None
        self._note(CadenceStopped, cadence_run=run, reason=reason, **fields)
        return True

    async def _cadence_wound_down(self) -> bool:
        """Before the deal's workflow ends, its cadence reports that it stopped (or is presumed to)."""
        run = self._state.cadence
        if run is None:
            return True
        if self._stop_unlaunched(run, "deal_ended", stage=None):
            return False
        try:
            await workflow.wait_condition(lambda: self._state.cadence is None, timeout=CADENCE_STOP_GRACE)
        except TimeoutError:
            self._note(CadenceStopped, stage=None, cadence_run=run, reason="deal_ended")
        return False  # events were recorded: persist them, then end

    def _done(self) -> bool:
        """Finished, with no follow-on deal left to start: the workflow may end."""
        return self._state.is_finished and not self._state.pending_follow_ons

    def _next_follow_on(self) -> tuple[FollowOn, datetime] | None:
        """The follow-on deal due first, and when (its delay compressed by the time scale)."""
        pending = self._state.pending_follow_ons
        if not pending:
            return None

        def due(f: FollowOn) -> datetime:
            return f.scheduled_at + (f.due_at - f.scheduled_at) * self._scale

        first = min(pending, key=due)
        return first, due(first)

    async def _start_follow_on(self, follow_on: FollowOn) -> None:
        """Start the follow-on deal as a workflow of its own, linked both ways."""
        s = self._state
        new_id = f"{s.deal_id}.{follow_on.kind}"
        try:
            prepared: PreparedFollowOn = await workflow.execute_activity(
                PREPARE_FOLLOW_ON,
                FollowOnRequest(process=follow_on.process, deal_id=new_id),
                result_type=PreparedFollowOn,
                start_to_close_timeout=timedelta(seconds=30),
                retry_policy=FOLLOW_ON_RETRY,
            )
        except ActivityError as exc:
            self._note(FollowOnFailed, kind=follow_on.kind, error=_error_text(exc)[0])
            return
        pinned = prepared.pinned
        start = StartDeal(
            deal_id=new_id,
            owner=s.owner,
            actor=decide.SYSTEM_ACTOR,
            fields=dict(s.fields),
            experiment=prepared.experiment,
            follows=s.deal_id,
            follow_kind=follow_on.kind,
        )
        preview = DealState(
            deal_id=new_id,
            process=pinned.name,
            version=pinned.version,
            owner=s.owner,
            stage=pinned.definition.stages[0].id,
        )
        try:
            await workflow.start_child_workflow(
                DealWorkflow.run,
                DealInput(
                    start=start,
                    pinned=pinned,
                    time_scale=self._scale,
                    log_flush_seconds=self._log_flush_seconds,
                    revision=REVISION,
                ),
                id=workflow_id(new_id),
                parent_close_policy=ParentClosePolicy.ABANDON,  # a deal of its own: it outlives this one
                search_attributes=TypedSearchAttributes(search_attributes(preview)),
            )
        except WorkflowAlreadyStartedError:
            self._note(FollowOnFailed, kind=follow_on.kind, error=f"a deal {new_id!r} already exists")
            return
        self._note(FollowOnStarted, kind=follow_on.kind, deal_id=new_id, process=pinned.name, version=pinned.version)

    def _has_work(self, rung: reminders.Rung | None, flush: datetime | None = None) -> bool:
        """Something to do now, or a deadline to wait for that is not the one being waited for."""
        return (
            bool(self._effects)
            or self._flush_needed()
            or self._done()
            or workflow.info().is_continue_as_new_suggested()
            or self._ladder_moved(rung)
            or (self._batched_log and self._flush_due() != flush)
        )

    def _note(self, cls: type[Any], at: datetime | None = None, **fields: Any) -> None:
        """Record an event of the engine's own, at the deal's current stage unless told otherwise,
        at `at` (never earlier than the deal's last event) or now."""
        fields.setdefault("stage", self._state.stage)
        when = workflow.now() if at is None else max(at, self._events[-1].at if self._events else at)
        self._record(decide.system_event(self._state, cls, when, **fields))

    def _ladder_moved(self, rung: reminders.Rung | None) -> bool:
        """The next reminder rung is no longer `rung`: the deal moved on, or the rung fired."""
        return reminders.next_rung(self._pinned.definition, self._state, self._scale) != rung

    def _rang_or_work(self, rung: reminders.Rung | None, flush: datetime | None) -> bool:
        return self._rang or self._has_work(rung, flush)

    def _set_alarm(self, at: datetime | None) -> None:
        """Ring (set `_rang`) at `at`; a new instant replaces the alarm, the same one keeps it."""
        if at == self._alarm_at:
            return
        if self._alarm is not None:
            self._alarm.cancel()
            self._alarm = None
        self._alarm_at, self._rang = at, False
        if at is None:
            return
        wait = (at - workflow.now()).total_seconds()
        if wait <= 0:
            self._rang = True
            return

        async def ring() -> None:
            await workflow.sleep(wait)
            self._rang = True

        self._alarm = asyncio.create_task(ring())

    def _unpersisted(self) -> bool:
        return self._persisted < self._state.last_seq

    def _flush_due(self) -> datetime | None:
        """When the events not yet in the log must be appended: a flush window after the first of them.

        Gathering a deal's events costs the rep nothing (an update answers before its events
        are appended) and saves an activity and a workflow task for every action folded into
        the batch; the log trails the deal by at most the window.
        """
        if not self._unpersisted():
            return None
        if not self._batched_log:
            return workflow.now()
        first = self._events[-1]
        for event in reversed(self._events):
            if event.seq <= self._persisted:
                break
            if isinstance(event, URGENT):
                return workflow.now()
            first = event
        return first.at + self._flush_window

    def _flush_needed(self) -> bool:
        due = self._flush_due()
        if due is None:
            return False
        return (
            due <= workflow.now()
            or self._state.last_seq - self._persisted >= MAX_LOG_BATCH
            or self._state.status != "open"  # after the outcome, the few events left go at once
            or workflow.info().is_continue_as_new_suggested()
        )

    async def _persist(self) -> None:
        if self._batched_log:
            self._index()
        upto = self._state.last_seq
        batch = [e for e in self._events if e.seq > self._persisted]
        in_task = self._in_task and any(isinstance(e, URGENT) for e in batch)
        append = AppendEvents(
            deal_id=self._state.deal_id,
            events=batch,
            snapshot=DealSnapshot.of(self._state),
            run_started_at=workflow.info().start_time,
            history_length=workflow.info().get_current_history_length(),
            echo=in_task,
        )
        # in the task, the outcome is in the log when the rep's call returns; should the task be
        # lost after the append, its rerun appends again from a later point in the history, which
        # replaces what the lost one wrote (store.event_log)
        await _activity(APPEND_EVENTS, append, in_task=in_task, timeout=APPEND_TIMEOUT, retry=APPEND_RETRY)
        self._persisted = upto
