"""The deal workflow: one durable execution per deal, walking the stages of its pinned definition.

The workflow holds no logic of its own about sales: decisions come from `workflows.decide`, state
from `workflows.state.fold`. What it adds is durability: updates validated before they enter
history, events carried out to the event log by an activity (at least once, keyed so that the
log has each exactly once), search attributes kept current, and continue-as-new with the whole
state when the history grows long.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy, SearchAttributeKey, SearchAttributePair
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from definitions.loader import PinnedDefinition
    from workflows import decide
    from workflows.commands import (
        ActionResult,
        Command,
        CompleteStage,
        DealInput,
        LoseDeal,
        MissingFact,
        MoveStage,
        WinDeal,
    )
    from workflows.effects import APPEND_EVENTS, AppendEvents, DealSnapshot
    from workflows.events import DealEvent
    from workflows.state import DealState, apply, fold

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


def workflow_id(deal_id: str) -> str:
    return f"deal-{deal_id}"


def search_attributes(state: DealState) -> list[SearchAttributePair[str]]:
    """What the Temporal UI and `temporal workflow list --query` can filter deals on."""
    return [
        SearchAttributePair(DEAL_STAGE, state.stage or state.status),
        SearchAttributePair(DEAL_OWNER, state.owner),
        SearchAttributePair(DEAL_STATUS, state.status),
        SearchAttributePair(PROCESS_NAME, state.process),
        SearchAttributePair(PROCESS_VERSION, state.version),
    ]


def _refused(refusal: decide.Refusal) -> ApplicationError:
    return ApplicationError(refusal.message, refusal.details, type=refusal.code, non_retryable=True)


@workflow.defn(name="Deal")
class DealWorkflow:
    @workflow.init
    def __init__(self, input: DealInput) -> None:
        self._pinned: PinnedDefinition = input.pinned
        self._events: list[DealEvent] = list(input.carried_events)
        self._state: DealState = fold(self._events)
        self._persisted = input.persisted_seq
        self._indexed: list[SearchAttributePair[str]] = search_attributes(self._state)
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
            await workflow.wait_condition(
                lambda: self._unpersisted() or self._state.is_finished or workflow.info().is_continue_as_new_suggested()
            )
            if self._unpersisted():
                await self._persist()
                continue
            await workflow.wait_condition(workflow.all_handlers_finished)
            if self._unpersisted():
                continue
            if self._state.is_finished:
                return self._state
            workflow.continue_as_new(
                DealInput(
                    start=input.start,
                    pinned=self._pinned,
                    carried_events=self._events,
                    persisted_seq=self._persisted,
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
        try:
            decision()
        except decide.Refusal as refusal:
            raise _refused(refusal) from None

    def _act(self, cmd: Command, decision: Callable[[], list[DealEvent]]) -> ActionResult:
        repeat = self._result(cmd.request_id)
        if repeat is not None:
            return repeat
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
        indexed = search_attributes(self._state)
        if indexed != self._indexed:
            changed = [new for new, old in zip(indexed, self._indexed, strict=True) if new != old]
            workflow.upsert_search_attributes([pair.key.value_set(pair.value) for pair in changed])
            self._indexed = indexed

    def _unpersisted(self) -> bool:
        return self._persisted < self._state.last_seq

    async def _persist(self) -> None:
        upto = self._state.last_seq
        batch = [e for e in self._events if e.seq > self._persisted]
        await workflow.execute_activity(
            APPEND_EVENTS,
            AppendEvents(deal_id=self._state.deal_id, events=batch, snapshot=DealSnapshot.of(self._state)),
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=APPEND_RETRY,
        )
        self._persisted = upto
