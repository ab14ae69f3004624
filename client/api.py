"""The typed Python client: what the CLI, the demo and any integration use to drive deals.

Every failure a caller can act on surfaces as a `DealflowError` subclass with a stable `code` and
a message naming the problem: a refused request (`Refused`), an unknown deal or process
(`NotFound`), a server that cannot be reached (`Unavailable`), or a request whose answer was lost
until its deadline (`OutcomeUnknown`: it may or may not have taken effect; repeat it under the
same request id).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
from pydantic import BaseModel, Field, ValidationError
from temporalio.client import (
    Client,
    WorkflowExecutionStatus,
    WorkflowHandle,
    WorkflowUpdateFailedError,
)
from temporalio.common import TypedSearchAttributes, WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from client.access import AccessDenied, AccessPolicy, Permission, PolicySource
from client.migration import MigrationPlan, PlanError, plan
from client.retry import Deadline, NoAnswer, RetryCounts, too_large, until_answered
from definitions.experiment import Experiment, assign
from definitions.loader import MAX_PINNED_BYTES, DefinitionError, PinnedDefinition, load_file, pinned_size, size_text
from domain import decide
from domain.access import Claim
from domain.commands import (
    LOG_FLUSH_SECONDS,
    REVISION,
    ActionResult,
    Command,
    CompleteStage,
    DealInput,
    LoseDeal,
    MigrateDeal,
    MissingFact,
    MoveStage,
    RecordResponse,
    StartDeal,
    WinDeal,
    workflow_id,
)
from domain.events import DealEvent
from domain.imports import ImportedHistory
from domain.pending import Pending, pending
from domain.state import DealState, fold
from store import access_log, event_log, experiments, log_failures, registry
from store.db import StoreUnavailable, connect_pool
from store.deals import DealRow, LinkedDeal, chain, list_deals, running_on
from store.log_failures import AppendFailure
from store.migrations import migrate
from worker.connect import connect_temporal, tls_config
from worker.settings import Settings, SettingsError
from workflows.deal import DealWorkflow
from workflows.search_attributes import search_attributes

C = TypeVar("C", bound=BaseModel)
# how long `start_deal` waits for the deal's first events to reach the log (the deal is started
# either way; with the database down, reads find it once the append gets through)
START_LOG_WAIT = 10.0
# Temporal aborts an update it has admitted when a workflow task of the deal fails (a new event
# raced the task's completion); the client sends it again this many times in all
UPDATE_ATTEMPTS = 5


class DealflowError(Exception):
    code = "error"

    def __init__(self, message: str, *, code: str | None = None, details: Any = None):
        super().__init__(message)
        self.message = message
        if code:
            self.code = code
        self.details = details

    @property
    def input_at_fault(self) -> dict[str, Any]:
        """The details naming the one input of the request to fix or repeat with, when there is
        one: `{"input": "reason"}`, `{"input": "stage_map", "stage": "demo"}`, `{"input":
        "request_id", "request_id": "..."}`; else empty. The message, shared by every face, names
        no flag or field: each face says how its own user supplies this input (a flag, a form
        field, a JSON field). A deal's refusal brings its details as a list of one."""
        found = self.details[0] if isinstance(self.details, list | tuple) and self.details else self.details
        return found if isinstance(found, dict) and isinstance(found.get("input"), str) else {}


class Refused(DealflowError):
    """The deal (or the client, before sending) refused the request; nothing changed."""

    code = "refused"


class NotFound(DealflowError):
    code = "not_found"


class Unavailable(DealflowError):
    code = "unavailable"


class Unauthenticated(DealflowError):
    """No identity could be established: no token, or one unknown, revoked or expired."""

    code = "unauthenticated"


class OutcomeUnknown(DealflowError):
    """Every attempt's answer was lost (timed out, connection dropped) until the request's deadline:
    it may or may not have taken effect. Repeating it under the same request id is safe and
    answers it (`request_id`; None for a start, whose id is the deal's)."""

    code = "outcome_unknown"

    def __init__(self, message: str, *, request_id: str | None = None, details: Any = None):
        super().__init__(message, details=details)
        self.request_id = request_id


class LogLagging(Unavailable):
    """Temporal holds a deal whose log does not: its appends keep failing (store.log_failures)."""

    code = "log_lagging"


class DealStatus(BaseModel):
    state: DealState
    missing_facts: list[MissingFact]
    process_ref: str
    running: bool
    log_failure: AppendFailure | None = Field(
        default=None, description="set while the deal's later events are missing from the log: their append fails"
    )
    stale: bool = Field(
        default=False, description="the log had not reached the min_seq asked for within the wait: an older state"
    )
    # what the deal will do by itself next, soonest first: reminder rungs, escalations, touches
    pending: list[Pending] = []


class StartedDeal(BaseModel):
    deal_id: str
    workflow_id: str
    process_ref: str
    stage: str
    readable: bool = Field(
        default=True,
        description="whether reads find the deal yet: false while its first events are still on their way "
        "to the log (no worker has run it yet, or the database is slow)",
    )


def _validation_message(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "request"
        parts.append(f"{where}: {err['msg']}")
    return "; ".join(parts)


def _build(model: type[C], **fields: Any) -> C:
    try:
        return model(**fields)
    except ValidationError as exc:
        raise Refused(f"invalid request: {_validation_message(exc)}", code="invalid_request") from None


def _folded(deal_id: str, events: list[DealEvent]) -> DealState:
    """The deal's state from its logged events; a log that does not fold has had rows altered or
    deleted behind its back, and says so rather than failing as a server error."""
    try:
        return fold(events)
    except ValueError as exc:
        raise DealflowError(
            f"the log of deal {deal_id!r} does not fold ({exc}): 'dealflow audit verify {deal_id}' says where",
            code="log_broken",
        ) from None


@contextmanager
def _deal_lookup(deal_id: str) -> Iterator[None]:
    """Temporal's "workflow not found" as the caller's "no such deal"."""
    try:
        yield
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            raise NotFound(f"no deal {deal_id!r}", code="unknown_deal") from None
        raise


class DealflowClient:
    def __init__(
        self,
        temporal: Client,
        pool: asyncpg.Pool,
        settings: Settings,
        access: AccessPolicy | PolicySource | None = None,
    ):
        self.temporal = temporal
        self.pool = pool
        self.settings = settings
        self._access = access
        self.retries = RetryCounts()  # requests sent again after a lost answer (client/retry.py)
        self._definitions: dict[tuple[str, str], PinnedDefinition] = {}

    @classmethod
    async def connect(cls, settings: Settings | None = None) -> DealflowClient:
        try:
            settings = settings or Settings.resolve()
            tls_config(settings)  # a missing certificate is named before anything connects
            policy = PolicySource.load()
        except SettingsError as exc:
            raise DealflowError(str(exc), code="bad_settings") from None
        try:
            pool = await connect_pool(settings.database_url, max_size=20)
        except StoreUnavailable as exc:
            raise Unavailable(
                f"{exc} (settings from {settings.source}; start 'dealflow dev' or set DATABASE_URL)"
            ) from None
        try:
            await migrate(pool)
            temporal = await connect_temporal(settings)
        except ConnectionError as exc:
            await pool.close()
            raise Unavailable(str(exc)) from None
        except BaseException:
            await pool.close()
            raise
        return cls(temporal, pool, settings, policy)

    @property
    def access(self) -> AccessPolicy | None:
        """The access configuration as it is now (a file that changed is read again); None: no
        access configuration, everything allowed."""
        if isinstance(self._access, PolicySource):
            return self._access.current()
        return self._access

    async def close(self) -> None:
        await self.pool.close()

    async def __aenter__(self) -> DealflowClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # --- access ----------------------------------------------------------------------------

    async def _claim(self, actor: str, permission: Permission, target: str | None = None) -> Claim | None:
        """The claim to send with a request, after the role check; None when access is off."""
        if self.access is None:
            return None
        try:
            return self.access.require(actor, permission)
        except AccessDenied as denied:
            known = self.access.identities.get(actor)
            await access_log.record(self.pool, actor, known.role if known else None, permission, target, denied.message)
            raise Refused(denied.message, code="forbidden") from None

    async def require(self, actor: str, permission: Permission, target: str | None = None) -> None:
        """Refuse (`Refused`, code forbidden, and recorded) unless `actor`'s role allows `permission`."""
        await self._claim(actor, permission, target)

    # --- definitions -----------------------------------------------------------------------

    async def deploy(self, path: str | Path, *, deployed_by: str) -> registry.Deployment:
        await self._claim(deployed_by, "deploy", Path(path).name)  # a refusal's page shows no server path
        try:
            pinned = load_file(path)
        except DefinitionError as exc:
            raise Refused(str(exc), code="invalid_definition", details=[str(p) for p in exc.problems]) from None
        return await registry.deploy(self.pool, pinned, deployed_by=deployed_by, source=str(path))

    async def deploy_pinned(self, pinned: PinnedDefinition, *, deployed_by: str, source: str) -> registry.Deployment:
        """Deploy a definition already loaded and checked (an upload: `definition_service.load_upload`)."""
        await self._claim(deployed_by, "deploy", source)
        return await registry.deploy(self.pool, pinned, deployed_by=deployed_by, source=source)

    async def definitions(self) -> list[registry.Deployment]:
        return await registry.list_all(self.pool)

    async def definition(self, name: str, version: str | None = None) -> PinnedDefinition:
        """A deployed version (the latest when `version` is None). Versions never change once
        deployed, so each is read and parsed once per client, then kept."""
        try:
            if version is None:
                version = await registry.latest_version(self.pool, name)
            found = self._definitions.get((name, version))
            if found is None:
                found = await registry.get(self.pool, name, version)
                self._definitions[(name, version)] = found
            return found
        except registry.UnknownDefinition as exc:
            raise NotFound(str(exc), code="unknown_process") from None

    # --- experiments -----------------------------------------------------------------------

    async def start_experiment(self, exp: Experiment, *, started_by: str) -> experiments.ExperimentRecord:
        await self._claim(started_by, "experiment", exp.name)
        try:
            return await experiments.start(self.pool, exp, started_by=started_by)
        except experiments.ExperimentRefused as exc:
            raise Refused(str(exc), code="experiment_refused") from None

    async def stop_experiment(self, name: str, *, stopped_by: str) -> experiments.ExperimentRecord:
        await self._claim(stopped_by, "experiment", name)
        try:
            return await experiments.stop(self.pool, name, stopped_by=stopped_by)
        except experiments.ExperimentRefused as exc:
            raise Refused(str(exc), code="experiment_refused") from None

    async def experiment(self, name: str) -> experiments.ExperimentRecord:
        try:
            return await experiments.get(self.pool, name)
        except experiments.ExperimentRefused as exc:
            raise NotFound(str(exc), code="unknown_experiment") from None

    # --- migrating running deals -------------------------------------------------------------

    async def plan_migration(
        self, name: str, from_version: str, to_version: str, stage_map: dict[str, str] | None = None
    ) -> MigrationPlan:
        source = await self.definition(name, from_version)
        target = await self.definition(name, to_version)
        try:
            return plan(source, target, await running_on(self.pool, name, source.version), stage_map or {})
        except PlanError as exc:
            raise Refused(str(exc), code="invalid_plan") from None

    async def migrate_deal(self, deal_id: str, migration: MigrationPlan, *, actor: str) -> ActionResult:
        claim = await self._claim(actor, "migrate", deal_id)
        cmd = _build(
            MigrateDeal,
            request_id=migration.request_id(deal_id),
            actor=actor,
            from_version=migration.source.version,
            to=migration.target,
            stage_map=migration.explicit,
            claim=claim,
        )
        return await self._update(deal_id, DealWorkflow.migrate, cmd)

    async def apply_migration(
        self, migration: MigrationPlan, *, actor: str
    ) -> list[tuple[str, ActionResult | DealflowError]]:
        """Migrate every deal of the plan; a deal that refuses (it moved on meanwhile) is reported,
        the others go ahead. A plan that strands any deal is refused before anything is sent."""
        if not migration.ok:
            stranded = ", ".join(f"{s.deal_id} at {s.stage}" for s in migration.stranded)
            raise Refused(
                f"the plan would leave deals on stages {migration.target.ref} does not have: {stranded}",
                code="stranded_deals",
                details=[s.deal_id for s in migration.stranded],
            )
        outcomes: list[tuple[str, ActionResult | DealflowError]] = []
        for move in migration.moves:
            try:
                outcomes.append((move.deal_id, await self.migrate_deal(move.deal_id, migration, actor=actor)))
            except (Refused, NotFound) as exc:
                outcomes.append((move.deal_id, exc))
        return outcomes

    # --- deals -----------------------------------------------------------------------------

    def _handle(self, deal_id: str) -> WorkflowHandle[Any, Any]:
        return self.temporal.get_workflow_handle(workflow_id(deal_id))

    async def start_deal(
        self,
        process: str,
        deal_id: str,
        owner: str,
        *,
        actor: str | None = None,
        value: float | None = None,
        fields: dict[str, str] | None = None,
        version: str | None = None,
        time_scale: float = 1.0,
        imported: ImportedHistory | None = None,
        permission: Permission = "start",
        request_id: str | None = None,
    ) -> StartedDeal:
        """Start a deal on `version`, or else on the version a running experiment assigns it, or
        else on the latest deployed version of `process`.

        `time_scale` below 1 compresses reminder and cadence waits, for simulations only.
        `imported` starts a deal brought over from a CRM at the stage it reached there (an
        import asks for the `import` permission instead of `start`). A start repeated under its
        `request_id` (the API's Idempotency-Key) is answered as the first was, not refused as a
        deal that exists.
        """
        actor = actor or owner
        claim = await self._claim(actor, permission, deal_id)
        team = None
        if self.access is not None and claim is not None:
            team = self.access.team_of(owner)
            if claim.role == "rep" and owner != actor:
                await self._refuse(actor, claim, "start", deal_id, f"{actor} is a rep: a rep starts deals they own")
            if claim.role == "manager" and team != claim.team:
                why = f"{actor} manages team {claim.team}; {owner} is not in it"
                await self._refuse(actor, claim, "start", deal_id, why)
        start = _build(
            StartDeal,
            deal_id=deal_id,
            owner=owner,
            actor=actor,
            value=value,
            fields=fields or {},
            team=team,
            imported=imported,
            request_id=request_id,
        )
        if version is None:
            running = await experiments.running_on(self.pool, process)
            if running is not None:
                version = assign(running, deal_id)
                start = start.model_copy(update={"experiment": running.name})
        pinned = await self.definition(process, version)
        size = pinned_size(pinned)
        if size > MAX_PINNED_BYTES:  # a version deployed before the loader refused such sizes
            raise Refused(
                f"{pinned.ref} is {size_text(size)} ({size:,} bytes) pinned, and a deal carries its definition "
                f"whole: dealflow starts deals on at most {size_text(MAX_PINNED_BYTES)} (Temporal refuses a start "
                "above 2 MiB); deploy a smaller version and start the deal on it",
                code="definition_too_large",
            )
        first = imported.visits[-1].stage if imported else pinned.definition.stages[0].id
        if imported and not pinned.definition.has_stage(first):
            raise Refused(f"{pinned.ref} has no stage {first!r}", code="unknown_stage")
        # indexed from the first instant, so `temporal workflow list` finds the deal at once
        preview = DealState(deal_id=deal_id, process=pinned.name, version=pinned.version, owner=owner, stage=first)
        deal_input = DealInput(
            start=start,
            pinned=pinned,
            time_scale=time_scale,
            log_flush_seconds=self.log_flush_seconds,
            revision=REVISION,
        )

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
                    rpc_timeout=self._rpc_timeout,
                )
            except WorkflowAlreadyStartedError as exc:
                # after a lost answer, or a repeat under the same request id, the deal found may be
                # the one an earlier attempt started
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
        # the deal's start is flushed at once: once it is in the log, every read finds the deal
        within = min(START_LOG_WAIT, self.settings.request_deadline_seconds / 2)
        readable = await self._until_logged(deal_id, min_seq=1, within=within)
        return StartedDeal(
            deal_id=deal_id, workflow_id=workflow_id(deal_id), process_ref=pinned.ref, stage=first, readable=readable
        )

    @property
    def _rpc_timeout(self) -> timedelta | None:
        """The deadline of each call to Temporal that `until_answered` sends (None: the SDK's)."""
        seconds = self.settings.rpc_timeout_seconds
        return None if seconds is None else timedelta(seconds=seconds)

    async def _started_by(self, ours: DealInput, run_id: str | None) -> bool:
        """Whether the deal's workflow was started with `ours`: the start and the version in the
        input of the first event of its first run."""
        handle = self.temporal.get_workflow_handle(workflow_id(ours.start.deal_id), run_id=run_id)
        async for event in handle.fetch_history_events(page_size=1, rpc_timeout=self._rpc_timeout):
            payloads = event.workflow_execution_started_event_attributes.input.payloads
            try:
                [theirs] = await self.temporal.data_converter.decode(payloads, [DealInput])
            except (ValueError, TypeError):
                return False  # not a deal's input as this client knows it: not this request's
            return isinstance(theirs, DealInput) and (theirs.start, theirs.pinned.ref) == (ours.start, ours.pinned.ref)
        return False

    @property
    def log_flush_seconds(self) -> float:
        """How long the deals this client starts gather events per append to the log."""
        flush = self.settings.log_flush_seconds
        return LOG_FLUSH_SECONDS if flush is None else flush

    async def _refuse(self, actor: str, claim: Claim, action: str, target: str, why: str) -> None:
        await access_log.record(self.pool, actor, claim.role, action, target, why)
        raise Refused(why, code="forbidden")

    async def _update(self, deal_id: str, update: Any, cmd: Command) -> ActionResult:
        handle = self._handle(deal_id)
        try:
            return await self._execute_update(handle, update, cmd)
        except NoAnswer as exc:
            raise OutcomeUnknown(
                f"outcome unknown after {exc.seconds:g} s: deal {deal_id!r} may or may not have recorded it",
                request_id=cmd.request_id,
                details={"attempts": exc.attempts, "input": "request_id", "request_id": cmd.request_id},
            ) from None
        except WorkflowUpdateFailedError as exc:
            cause = exc.cause
            if isinstance(cause, ApplicationError) and cause.type == "forbidden":
                role = cmd.claim.role if cmd.claim else None
                action = type(cmd).__name__
                await access_log.record(self.pool, cmd.actor, role, action, deal_id, cause.message)
            if isinstance(cause, ApplicationError):
                raise Refused(cause.message, code=cause.type or "refused", details=cause.details) from None
            raise Refused(f"update failed: {cause}") from None
        except RPCError as exc:
            if exc.status not in (RPCStatusCode.NOT_FOUND, RPCStatusCode.FAILED_PRECONDITION):
                raise Unavailable(f"Temporal did not take the request: {exc.message}") from None
            try:
                with _deal_lookup(deal_id):
                    described = await handle.describe()
            except RPCError as lookup:
                raise Unavailable(f"Temporal did not answer about deal {deal_id!r}: {lookup.message}") from None
            if described.status == WorkflowExecutionStatus.RUNNING:  # aborted, every attempt
                raise Unavailable(
                    f"Temporal aborted the request to deal {deal_id!r} each time it was sent ({exc.message})",
                    details={"input": "request_id", "request_id": cmd.request_id},
                ) from None
            # the workflow has completed: a repeat of an earlier request still gets its answer
            return await self._closed_result(deal_id, cmd.request_id)

    async def _execute_update(self, handle: WorkflowHandle[Any, Any], update: Any, cmd: Command) -> ActionResult:
        """The update, under the request id as its id, so that a repeat is never applied twice; sent
        again when its answer is lost (the call timed out, the connection dropped: `until_answered`,
        which raises `NoAnswer` at the request's deadline) and while Temporal aborts it because a
        workflow task of the running deal failed (a new event raced its completion; up to
        `UPDATE_ATTEMPTS` in all). Any other answer goes to the caller."""
        deadline = Deadline(self.settings.request_deadline_seconds)

        async def send(_: int) -> ActionResult:
            result: ActionResult = await handle.execute_update(
                update, cmd, id=cmd.request_id, rpc_timeout=self._rpc_timeout
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

    async def _closed_result(self, deal_id: str, request_id: str) -> ActionResult:
        """The answer of a deal whose workflow has ended, from its log (which holds all of it)."""
        state = await self.logged_state(deal_id)
        result = ActionResult.of(state, request_id)
        if result is not None:
            return result
        raise Refused(f"deal {deal_id!r} is {state.status}; it takes no more actions", code="deal_closed")

    @staticmethod
    def _request_id(request_id: str | None) -> str:
        return request_id or str(uuid.uuid4())

    async def complete_stage(
        self,
        deal_id: str,
        stage: str,
        *,
        actor: str,
        facts: dict[str, Any] | None = None,
        request_id: str | None = None,
    ) -> ActionResult:
        cmd = _build(
            CompleteStage,
            request_id=self._request_id(request_id),
            actor=actor,
            stage=stage,
            facts=facts or {},
            claim=await self._claim(actor, "act", deal_id),
        )
        return await self._update(deal_id, DealWorkflow.complete_stage, cmd)

    async def move(
        self,
        deal_id: str,
        to: str,
        *,
        actor: str,
        reason: str | None = None,
        expected_stage: str | None = None,
        request_id: str | None = None,
    ) -> ActionResult:
        cmd = _build(
            MoveStage,
            request_id=self._request_id(request_id),
            actor=actor,
            claim=await self._claim(actor, "act", deal_id),
            to=to,
            reason=reason,
            expected_stage=expected_stage,
        )
        return await self._update(deal_id, DealWorkflow.move, cmd)

    async def win(
        self,
        deal_id: str,
        *,
        actor: str,
        facts: dict[str, Any] | None = None,
        expected_stage: str | None = None,
        request_id: str | None = None,
        rebuy: list[str] | None = None,
    ) -> ActionResult:
        """Close as won; `rebuy` names the follow-on deals to start after their delays."""
        cmd = _build(
            WinDeal,
            request_id=self._request_id(request_id),
            actor=actor,
            claim=await self._claim(actor, "act", deal_id),
            facts=facts or {},
            expected_stage=expected_stage,
            rebuy=rebuy or [],
        )
        return await self._update(deal_id, DealWorkflow.win, cmd)

    async def lose(
        self,
        deal_id: str,
        reason: str,
        *,
        actor: str,
        note: str | None = None,
        expected_stage: str | None = None,
        request_id: str | None = None,
        facts: dict[str, Any] | None = None,
    ) -> ActionResult:
        """Close as lost; `facts` are the current stage's facts known at the loss (none required)."""
        cmd = _build(
            LoseDeal,
            request_id=self._request_id(request_id),
            actor=actor,
            claim=await self._claim(actor, "act", deal_id),
            reason=reason,
            note=note,
            expected_stage=expected_stage,
            facts=facts or {},
        )
        return await self._update(deal_id, DealWorkflow.lose, cmd)

    async def record_response(
        self,
        deal_id: str,
        *,
        actor: str,
        kind: str = "replied",
        note: str | None = None,
        request_id: str | None = None,
    ) -> ActionResult:
        """The buyer replied, booked a meeting, unsubscribed or bounced: stops the cadence at once."""
        cmd = _build(
            RecordResponse,
            request_id=self._request_id(request_id),
            actor=actor,
            kind=kind,
            note=note,
            claim=await self._claim(actor, "act", deal_id),
        )
        return await self._update(deal_id, DealWorkflow.record_response, cmd)

    async def logged_state(self, deal_id: str, *, min_seq: int = 0, within: float = 5.0) -> DealState:
        """A deal's state, folded from its events in the log (never asked of the running deal).

        The log trails a running deal by at most its flush window (a start, an outcome and a
        migration are in it when their calls return). To read your own write, pass the
        `last_seq` of the action's result as `min_seq`: the read waits up to `within` seconds
        for the log to reach it.
        """
        return _folded(deal_id, await self.events(deal_id, min_seq=min_seq, within=within))

    async def _until_logged(self, deal_id: str, min_seq: int, within: float) -> bool:
        """Wait, `within` seconds at most, until the log holds the deal's event `min_seq`; whether it does."""
        deadline = asyncio.get_running_loop().time() + within
        pause = 0.02
        while await event_log.last_seq(self.pool, deal_id) < min_seq:
            if asyncio.get_running_loop().time() + pause > deadline:
                return False
            await asyncio.sleep(pause)
            pause = min(pause * 2, 0.25)
        return True

    async def status(self, deal_id: str, *, min_seq: int = 0) -> DealStatus:
        """The deal as its log tells it; `stale` when the log had not reached `min_seq` in time."""
        events = await self.events(deal_id, min_seq=min_seq)
        state = _folded(deal_id, events)
        pinned = await self.definition(state.process, state.version)
        return DealStatus(
            state=state,
            missing_facts=decide.missing_facts(pinned.definition, state),
            process_ref=pinned.ref,
            running=not state.may_end,
            log_failure=await log_failures.of_deal(self.pool, deal_id),
            stale=state.last_seq < min_seq,
            pending=pending(pinned.definition, state, events),
        )

    async def events(self, deal_id: str, *, min_seq: int = 0, within: float = 5.0) -> list[DealEvent]:
        """The deal's logged events, once the log holds event `min_seq` (see `logged_state`)."""
        if min_seq and await event_log.last_seq(self.pool, deal_id) == 0:
            raise NotFound(f"no deal {deal_id!r}", code="unknown_deal")  # nothing to wait for
        await self._until_logged(deal_id, min_seq, within)
        events = await event_log.read(self.pool, deal_id)
        if not events:
            failure = await log_failures.of_deal(self.pool, deal_id)
            if failure is not None:
                raise LogLagging(f"deal {deal_id!r} is in Temporal's history but not in the log: {failure.describe()}")
            raise NotFound(f"no deal {deal_id!r}", code="unknown_deal")
        return events

    async def chain(self, deal_id: str) -> list[LinkedDeal]:
        linked = await chain(self.pool, deal_id)
        if not linked:
            raise NotFound(f"no deal {deal_id!r} in the projection", code="unknown_deal")
        return linked

    async def list_deals(
        self,
        *,
        stage: str | None = None,
        owner: str | None = None,
        process: str | None = None,
        status: str | None = None,
        version: str | None = None,
        team: str | None = None,
        limit: int = 1000,
        offset: int = 0,
    ) -> list[DealRow]:
        return await list_deals(
            self.pool,
            stage=stage,
            owner=owner,
            process=process,
            status=status,
            version=version,
            team=team,
            limit=limit,
            offset=offset,
        )
