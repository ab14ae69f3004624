"""What reps may ask of a deal, and what the deal answers.

These are the payloads of the deal workflow's updates. `extra="forbid"` makes a misspelt field a
refusal rather than a silently ignored value.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from definitions.loader import PinnedDefinition
from definitions.model import Cadence
from domain.access import Claim
from domain.events import BuyerResponseKind, DealEvent
from domain.imports import ImportedHistory
from domain.limits import FactsInput, FieldsInput, Kinds, Name, Note
from domain.state import DealState, Status


class _Payload(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Command(_Payload):
    request_id: Name
    actor: Name
    expected_stage: Name | None = None
    claim: Claim | None = None  # the actor's role and team, when access control is configured


class CompleteStage(Command):
    stage: Name
    facts: FactsInput = {}


class MoveStage(Command):
    to: Name
    reason: Note | None = None


class WinDeal(Command):
    facts: FactsInput = {}
    rebuy: Kinds = Field(default=[], description="follow-on kinds to schedule (the definition's rebuy)")


class LoseDeal(Command):
    reason: Name
    note: Note | None = None
    facts: FactsInput = {}  # of the current stage, those known at the loss; none is required


class RecordResponse(Command):
    kind: BuyerResponseKind = "replied"
    note: Note | None = None


class MigrateDeal(Command):
    """Move a running deal to another deployed version of its process.

    `stage_map` names the new id of each old stage that changes its id; stages the new version
    keeps under the same id need no entry. The deal must be on `from_version`, so a plan made
    against one version is never applied to a deal that has since moved on.
    """

    from_version: Name
    to: PinnedDefinition
    stage_map: dict[Name, Name] = {}


class ActionResult(_Payload):
    """The outcome of a request; a repeat of the same request id gets this same answer."""

    deal_id: str
    request_id: str
    stage: str | None
    status: Status
    first_seq: int
    last_seq: int

    @classmethod
    def of(cls, state: DealState, request_id: str) -> ActionResult | None:
        """The answer a deal in `state` gives to `request_id`, if it took that request."""
        record = state.requests.get(request_id)
        if record is None:
            return None
        return cls(
            deal_id=state.deal_id,
            request_id=request_id,
            stage=record.stage,
            status=record.status,
            first_seq=record.first_seq,
            last_seq=record.last_seq,
        )


def workflow_id(deal_id: str) -> str:
    """The id of a deal's workflow: one per deal, whatever its runs."""
    return f"deal-{deal_id}"


class StartDeal(_Payload):
    deal_id: str = Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]*$")
    owner: Name
    actor: Name
    value: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    fields: FieldsInput = {}
    experiment: Name | None = None
    follows: Name | None = None
    follow_kind: Name | None = None
    team: Name | None = None
    # a deal brought over from a CRM export, started at the stage it had reached there
    imported: ImportedHistory | None = None
    # the start's request id (the API's Idempotency-Key): a repeat under it is answered, not refused
    request_id: Name | None = None


# How long a deal gathers events before one append to the event log, by default: long enough to
# fold a rep's burst of actions into one activity, short enough that listings hardly trail.
LOG_FLUSH_SECONDS = 2.0

# The revision of the deal workflow's behaviour that new runs follow. It travels in the run's
# input, so a run replays the way it began, and continue-as-new moves a deal to the latest. Kept
# in the input rather than behind workflow.patched because the choice is made at start, and a
# patch would cost every deal a marker and a search-attribute upsert. The workflow runs only this
# revision: how a new one is introduced and an old one retired is in docs/revisions.md.
REVISION = 4


class PendingCadence(_Payload):
    """A cadence the deal has started whose first touch is not due yet.

    Its child workflow is launched only when that touch falls due: most cadences are stopped
    before then (the buyer answers, the deal moves on and ends), and a stop before the launch
    costs the deal one event instead of a child workflow and its signals.
    """

    cadence_run: str
    cadence: Cadence
    due_at: datetime


class DealInput(_Payload):
    """The workflow's input: a fresh start, or the whole carried state after continue-as-new."""

    start: StartDeal
    pinned: PinnedDefinition
    carried_events: list[DealEvent] = []
    persisted_seq: int = 0
    time_scale: float = Field(default=1.0, gt=0, le=1, description="simulation only: compress waits")
    log_flush_seconds: float = Field(
        default=LOG_FLUSH_SECONDS,
        ge=0,
        le=60,
        description="how long the deal may gather events before it appends them to the event log "
        "(0: as soon as there is anything to append); outcomes and migrations go at once",
    )
    pending_cadence: PendingCadence | None = None
    # an input without one was made before revisions existed: revision 1
    revision: int = Field(default=1, ge=1, le=REVISION)


class MissingFact(_Payload):
    fact: str
    type: str
    question: str
    options: list[str] = []

    @classmethod
    def of(cls, spec: Any) -> MissingFact:
        return cls(fact=spec.fact, type=spec.type, question=spec.question, options=list(spec.options))
