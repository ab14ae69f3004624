"""The deal workflows as the application layer sends to them: a start and an update, each under
its stable id, sent again when the answer is lost (`app/retry.py`), and Temporal's answers
turned into the caller's (`app/errors.py`).

It knows Temporal and nothing of the log or of access: a deal that has ended is answered by the
caller from the log (`Ended`), and a refusal the deal made on access grounds is recorded by the
caller (`app/permissions.py`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.common import TypedSearchAttributes, WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from app.errors import NotFound, OutcomeUnknown, Refused, Unavailable
from app.retry import Deadline, NoAnswer, RetryCounts, too_large, until_answered
from definitions.loader import size_text
from domain.commands import ActionResult, Command, DealInput, workflow_id
from domain.state import DealState
from worker.settings import Settings
from workflows.deal import DealWorkflow
from workflows.search_attributes import search_attributes

# Temporal aborts an update it has admitted when a workflow task of the deal fails (a new event
# raced the task's completion); it is sent again this many times in all
UPDATE_ATTEMPTS = 5


class Ended(Exception):
    """The deal's workflow has completed: a repeat of an earlier request is answered from the log."""


@contextmanager
def deal_lookup(deal_id: str) -> Iterator[None]:
    """Temporal's "workflow not found" as the caller's "no such deal"."""
    try:
        yield
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            raise NotFound(f"no deal {deal_id!r}", code="unknown_deal") from None
        raise


class DealWorkflows:
    def __init__(self, temporal: Client, settings: Settings, retries: RetryCounts):
        self.temporal = temporal
        self.settings = settings
        self.retries = retries

    @property
    def rpc_timeout(self) -> timedelta | None:
        """The deadline of each call to Temporal that `until_answered` sends (None: the SDK's)."""
        seconds = self.settings.rpc_timeout_seconds
        return None if seconds is None else timedelta(seconds=seconds)

    def handle(self, deal_id: str) -> WorkflowHandle[Any, Any]:
        return self.temporal.get_workflow_handle(workflow_id(deal_id))

    async def start(self, deal_input: DealInput, preview: DealState) -> None:
        """Start the deal's workflow, indexed from the first instant by `preview`'s search
        attributes. A deal found under its id after a lost answer, or for a repeat under the same
        request id, is this request's if its first event's input is the same start."""
        start = deal_input.start
        deal_id = start.deal_id

        async def send(attempt: int) -> None:
            try:
                await self.temporal.start_workflow(
                    DealWorkflow.run,
                    deal_input,
                    id=workflow_id(deal_id),
                    task_queue=self.settings.task_queue,
                    id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                    id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
                    search_attributes=TypedSearchAttributes(search_attributes(preview)),
                    rpc_timeout=self.rpc_timeout,
                )
            except WorkflowAlreadyStartedError as exc:
                repeat = attempt > 0 or start.request_id is not None
                if repeat and await self._started_by(deal_input, exc.first_run_id or exc.run_id):
                    return
                raise Refused(f"deal {deal_id!r} already exists", code="deal_exists") from None
            except RPCError as exc:
                if too_large(exc):  # it would be refused again however often it were sent
                    carried = len(deal_input.model_dump_json().encode("utf-8"))
                    raise Refused(
                        f"deal {deal_id!r} was not started: its start is {size_text(carried)} ({carried:,} bytes), "
                        f"more than Temporal takes ({exc.message}); nothing was started",
                        code="start_too_large",
                    ) from None
                raise

        try:
            deadline = Deadline(self.settings.request_deadline_seconds)
            await until_answered(send, deadline, self.retries, what=f"start of deal {deal_id}")
        except NoAnswer as exc:
            raise OutcomeUnknown(
                f"outcome unknown after {exc.seconds:g} s: deal {deal_id!r} may or may not have been started; "
                f"'dealflow deal status {deal_id}' tells",
                details={"attempts": exc.attempts},
            ) from None

    async def _started_by(self, ours: DealInput, run_id: str | None) -> bool:
        """Whether the deal's workflow was started with `ours`: the start and the version in the
        input of the first event of its first run."""
        handle = self.temporal.get_workflow_handle(workflow_id(ours.start.deal_id), run_id=run_id)
        async for event in handle.fetch_history_events(page_size=1, rpc_timeout=self.rpc_timeout):
            payloads = event.workflow_execution_started_event_attributes.input.payloads
            try:
                [theirs] = await self.temporal.data_converter.decode(payloads, [DealInput])
            except (ValueError, TypeError):
                return False  # not a deal's input as this client knows it: not this request's
            return isinstance(theirs, DealInput) and (theirs.start, theirs.pinned.ref) == (ours.start, ours.pinned.ref)
        return False

    async def update(self, deal_id: str, update: Any, cmd: Command) -> ActionResult:
        """The update's result; `Refused` with the deal's own code (forbidden included), or
        `Ended` when the deal's workflow has completed."""
        handle = self.handle(deal_id)
        try:
            return await self._execute(handle, update, cmd)
        except NoAnswer as exc:
            raise OutcomeUnknown(
                f"outcome unknown after {exc.seconds:g} s: deal {deal_id!r} may or may not have recorded it",
                request_id=cmd.request_id,
                details={"attempts": exc.attempts, "input": "request_id", "request_id": cmd.request_id},
            ) from None
        except WorkflowUpdateFailedError as exc:
            cause = exc.cause
            if isinstance(cause, ApplicationError):
                raise Refused(cause.message, code=cause.type or "refused", details=cause.details) from None
            raise Refused(f"update failed: {cause}") from None
        except RPCError as exc:
            if exc.status not in (RPCStatusCode.NOT_FOUND, RPCStatusCode.FAILED_PRECONDITION):
                raise Unavailable(f"Temporal did not take the request: {exc.message}") from None
            try:
                with deal_lookup(deal_id):
                    described = await handle.describe()
            except RPCError as lookup:
                raise Unavailable(f"Temporal did not answer about deal {deal_id!r}: {lookup.message}") from None
            if described.status == WorkflowExecutionStatus.RUNNING:  # aborted, every attempt
                raise Unavailable(
                    f"Temporal aborted the request to deal {deal_id!r} each time it was sent ({exc.message})",
                    details={"input": "request_id", "request_id": cmd.request_id},
                ) from None
            raise Ended(deal_id) from None

    async def _execute(self, handle: WorkflowHandle[Any, Any], update: Any, cmd: Command) -> ActionResult:
        """The update, under the request id as its id, so that a repeat is never applied twice; sent
        again when its answer is lost (the call timed out, the connection dropped: `until_answered`,
        which raises `NoAnswer` at the request's deadline) and while Temporal aborts it because a
        workflow task of the running deal failed (a new event raced its completion; up to
        `UPDATE_ATTEMPTS` in all). Any other answer goes to the caller."""
        deadline = Deadline(self.settings.request_deadline_seconds)

        async def send(_: int) -> ActionResult:
            result: ActionResult = await handle.execute_update(
                update, cmd, id=cmd.request_id, rpc_timeout=self.rpc_timeout
            )
            return result

        for attempt in range(UPDATE_ATTEMPTS):
            try:
                return await until_answered(send, deadline, self.retries, what=f"request {cmd.request_id}")
            except RPCError as exc:
                if exc.status != RPCStatusCode.FAILED_PRECONDITION or attempt == UPDATE_ATTEMPTS - 1:
                    raise
                try:
                    running = (await handle.describe()).status == WorkflowExecutionStatus.RUNNING
                except RPCError:
                    running = False
                if not running:
                    raise
                self.retries.note("aborted")
                self.retries.resent += 1
                await asyncio.sleep(min(0.2 * 2**attempt, max(0.0, deadline.remaining())))
        raise AssertionError("unreachable")  # the last attempt returns or raises
