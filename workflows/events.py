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


DealEvent = Annotated[
    DealStarted | StageEntered | StageCompleted | StageSkipped | MovedBack | DealWon | DealLost | DealClosed,
    Field(discriminator="type"),
]

EVENT_ADAPTER: TypeAdapter[DealEvent] = TypeAdapter(DealEvent)
EVENTS_ADAPTER: TypeAdapter[list[DealEvent]] = TypeAdapter(list[DealEvent])
