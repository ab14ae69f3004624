"""Domain events of a deal: the only record of what happened to it.

Every event carries its sequence number inside the deal, the time (workflow time, so replay
gives the same value), the actor and the stage it concerns. Events are immutable and are never
rewritten; corrections are new events.

Temporal's history is the source of truth: the events a deal records there are authoritative,
and the PostgreSQL log is their hash-chained, append-only record. Both keep events for years, so
their payloads outlive the code that wrote them. Each payload therefore carries the schema
version of its type (`schema_version`; stored payloads written before versions existed have none
and are version 1, see `legacy`), and every payload is read through `upcast`, which brings an
older shape up to the current one, in the manner of eventsourcing's mapper. To remove, rename or change the meaning
of a field: bump the type's `VERSION` and register in `UPCASTERS` the function from the previous
version. Adding an optional field needs neither.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    TypeAdapter,
    model_serializer,
    model_validator,
)

FactValue = StrictBool | StrictInt | StrictFloat | StrictStr
Facts = dict[str, FactValue]

EntryVia = Literal["start", "next", "skip", "back", "won", "migrate"]


Upcaster = Callable[[dict[str, Any]], dict[str, Any]]
# (event type, version n): the function that turns a payload of version n into version n + 1
UPCASTERS: dict[tuple[str, int], Upcaster] = {}


def upcast(cls: type[EventBase], payload: Any) -> Any:
    """A payload of `cls` in its current shape. One without a version is taken to be in the
    current shape: that is how events are made in code (see `legacy` for stored ones)."""
    if not isinstance(payload, dict):
        return payload
    payload = dict(payload)
    version = payload.pop("schema_version", cls.VERSION)
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise ValueError(f"schema_version {version!r} is not a version (1, 2, ...)")
    field = cls.model_fields.get("type")
    kind = field.default if field is not None else None
    if kind is None or payload.get("type", kind) != kind:
        return payload  # another type's payload (a union tries each type in turn)
    if version > cls.VERSION:
        raise ValueError(f"{kind} of schema version {version} is newer than this code reads ({cls.VERSION})")
    while version < cls.VERSION:
        payload = UPCASTERS[(kind, version)](payload)
        version += 1
    return payload


def _schema_version_in_schema(schema: dict[str, Any]) -> None:
    """The JSON Schema of a payload names the `schema_version` every payload carries."""
    schema.setdefault("properties", {})["schema_version"] = {
        "type": "integer",
        "minimum": 1,
        "description": "the version of this event type's payload shape",
    }


class EventBase(BaseModel):
    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        json_schema_extra=_schema_version_in_schema,
    )

    # the version of this type's payload shape (see the module's docstring)
    VERSION: ClassVar[int] = 1

    seq: int = Field(ge=1)
    at: datetime
    actor: str
    stage: str | None = None
    request_id: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _upcast(cls, payload: Any) -> Any:
        return upcast(cls, payload)

    @model_serializer(mode="wrap")
    def _with_schema_version(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        payload: dict[str, Any] = handler(self)
        payload["schema_version"] = type(self).VERSION
        return payload


class DealStarted(EventBase):
    type: Literal["DealStarted"] = "DealStarted"
    deal_id: str
    process: str
    version: str
    content_hash: str
    owner: str
    value: float | None = None
    fields: dict[str, str] = {}
    experiment: str | None = None  # the experiment that chose this version, if one did
    follows: str | None = None  # the won deal this one follows on from (rebuy)
    follow_kind: str | None = None  # deep-selling, up-selling or cross-selling
    team: str | None = None  # the owner's team when the deal started (access control)


class StageEntered(EventBase):
    type: Literal["StageEntered"] = "StageEntered"
    via: EntryVia


class StageCompleted(EventBase):
    type: Literal["StageCompleted"] = "StageCompleted"
    facts: Facts = {}


class StageSkipped(EventBase):
    type: Literal["StageSkipped"] = "StageSkipped"
    to_stage: str
    skipped: list[str]
    reason: str | None = None


class MovedBack(EventBase):
    type: Literal["MovedBack"] = "MovedBack"
    to_stage: str
    reason: str | None = None


class DealWon(EventBase):
    type: Literal["DealWon"] = "DealWon"


class DealLost(EventBase):
    type: Literal["DealLost"] = "DealLost"
    reason: str
    note: str | None = None
    facts: Facts = {}  # the stage's facts known when it was lost (which close was tried, say)


class DealClosed(EventBase):
    """The last post-sale stage is done; the deal's workflow ends."""

    type: Literal["DealClosed"] = "DealClosed"


class SlaBreached(EventBase):
    """The stage's deadline passed without the stage being left."""

    type: Literal["SlaBreached"] = "SlaBreached"
    due_at: datetime


class ReminderSent(EventBase):
    type: Literal["ReminderSent"] = "ReminderSent"
    to: str
    due_at: datetime


class Escalated(EventBase):
    """A rung of the escalation ladder; `reassigned_to` makes that person the deal's owner."""

    type: Literal["Escalated"] = "Escalated"
    level: int = Field(ge=1)
    notify: str
    to: str
    reassigned_to: str | None = None
    due_at: datetime


class ProposalGenerated(EventBase):
    type: Literal["ProposalGenerated"] = "ProposalGenerated"
    template: str
    path: str
    html_path: str
    content_hash: str


class ProposalFailed(EventBase):
    type: Literal["ProposalFailed"] = "ProposalFailed"
    template: str
    missing: list[str] = []
    error: str


class CadenceStarted(EventBase):
    type: Literal["CadenceStarted"] = "CadenceStarted"
    cadence: str
    cadence_run: str
    touches: int


class TouchScheduled(EventBase):
    type: Literal["TouchScheduled"] = "TouchScheduled"
    cadence_run: str
    touch_no: int
    channel: str
    due_at: datetime


class TouchSent(EventBase):
    type: Literal["TouchSent"] = "TouchSent"
    cadence_run: str
    touch_no: int
    channel: str
    message_id: str


class TouchFailed(EventBase):
    type: Literal["TouchFailed"] = "TouchFailed"
    cadence_run: str
    touch_no: int
    channel: str
    error: str


class CadenceStopped(EventBase):
    type: Literal["CadenceStopped"] = "CadenceStopped"
    cadence_run: str
    reason: str


class CadenceCompleted(EventBase):
    type: Literal["CadenceCompleted"] = "CadenceCompleted"
    cadence_run: str
    touches_sent: int


class MigratedToVersion(EventBase):
    """The deal moved to another deployed version of its process (`definitions migrate`).

    `stage_map` sends each stage of the old version that the new one keeps (under its own or
    another id) to its new id; `stage` is the stage the deal is in afterwards.
    """

    type: Literal["MigratedToVersion"] = "MigratedToVersion"
    from_version: str
    to_version: str
    content_hash: str
    from_stage: str | None
    stage_map: dict[str, str]


class FollowOnScheduled(EventBase):
    """A won deal will start a follow-on deal of `process` at `due_at` (the definition's rebuy)."""

    type: Literal["FollowOnScheduled"] = "FollowOnScheduled"
    kind: str
    process: str
    due_at: datetime


class FollowOnStarted(EventBase):
    type: Literal["FollowOnStarted"] = "FollowOnStarted"
    kind: str
    deal_id: str
    process: str
    version: str


class FollowOnFailed(EventBase):
    type: Literal["FollowOnFailed"] = "FollowOnFailed"
    kind: str
    error: str


class DealImported(EventBase):
    """The deal came from another system's export: where, and which row. The events that follow
    it at the same or earlier instants retell the history the export gave."""

    type: Literal["DealImported"] = "DealImported"
    source: str
    crm_id: str
    file: str
    sha256: str
    row: int


AssignRule = Literal["fixed", "round-robin", "fewest-open"]


class HandedOff(EventBase):
    """The deal entered a stage another team owns, and passed to one of its members.

    `stage` is the stage entered; `rule` is how the new owner was chosen (the team's assignment
    rule), and `reason` says why in words, e.g. "stage prove belongs to team account-executives;
    rita is not in it; round-robin chose kari".
    """

    type: Literal["HandedOff"] = "HandedOff"
    from_owner: str
    to_owner: str
    team: str
    rule: AssignRule
    reason: str


BuyerResponseKind = Literal["replied", "meeting_booked", "unsubscribed", "bounced"]


class BuyerResponded(EventBase):
    type: Literal["BuyerResponded"] = "BuyerResponded"
    kind: BuyerResponseKind
    note: str | None = None


EventType = (
    DealStarted
    | StageEntered
    | StageCompleted
    | StageSkipped
    | MovedBack
    | DealWon
    | DealLost
    | DealClosed
    | SlaBreached
    | ReminderSent
    | Escalated
    | ProposalGenerated
    | ProposalFailed
    | CadenceStarted
    | TouchScheduled
    | TouchSent
    | TouchFailed
    | CadenceStopped
    | CadenceCompleted
    | BuyerResponded
    | MigratedToVersion
    | FollowOnScheduled
    | FollowOnStarted
    | FollowOnFailed
    | HandedOff
    | DealImported
)


DealEvent = Annotated[EventType, Field(discriminator="type")]


def legacy(payload: Any) -> Any:
    """A stored payload, with the version that payloads written before versions existed had: 1.

    Readers of stored payloads (the event log, its verification) read through this, so that an
    old row is upcast even after its type has moved on. Payloads that Temporal carries (a run's
    input) need not: a run started before versions existed is moved to a new run, which writes
    versions, before any type's version is raised (docs/revisions.md).
    """
    if not isinstance(payload, dict) or "schema_version" in payload:
        return payload
    return {**payload, "schema_version": 1}


EVENT_ADAPTER: TypeAdapter[DealEvent] = TypeAdapter(DealEvent)


def decode_stored(payload: str | bytes) -> DealEvent:
    """An event from its stored JSON (a row of the event log)."""
    return EVENT_ADAPTER.validate_python(legacy(json.loads(payload)))


EVENTS_ADAPTER: TypeAdapter[list[DealEvent]] = TypeAdapter(list[DealEvent])
