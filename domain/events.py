"""Domain events of a deal: the only record of what happened to it.

Every event carries its sequence number inside the deal, the time (workflow time, so replay
gives the same value), the actor and the stage it concerns. Events are immutable and are never
rewritten; corrections are new events.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt, StrictStr, TypeAdapter

FactValue = StrictBool | StrictInt | StrictFloat | StrictStr
Facts = dict[str, FactValue]

EntryVia = Literal["start", "next", "skip", "back", "won", "migrate"]


class EventBase(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    seq: int = Field(ge=1)
    at: datetime
    actor: str
    stage: str | None = None
    request_id: str | None = None


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


BuyerResponseKind = Literal["replied", "meeting_booked", "unsubscribed", "bounced"]


class BuyerResponded(EventBase):
    type: Literal["BuyerResponded"] = "BuyerResponded"
    kind: BuyerResponseKind
    note: str | None = None


DealEvent = Annotated[
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
    | FollowOnFailed,
    Field(discriminator="type"),
]

EVENT_ADAPTER: TypeAdapter[DealEvent] = TypeAdapter(DealEvent)
EVENTS_ADAPTER: TypeAdapter[list[DealEvent]] = TypeAdapter(list[DealEvent])
