"""Inputs of the activities the deal workflow calls: the contract between the deterministic
side and the side-effect side, kept here so workflow code never imports activity code."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict

from workflows.events import DealEvent
from workflows.state import DealState, Status

APPEND_EVENTS = "append_events"


class DealSnapshot(BaseModel):
    """One row of the current-state projection, as of `last_seq`."""

    model_config = ConfigDict(frozen=True)

    deal_id: str
    process: str
    version: str
    owner: str
    value: float | None
    status: Status
    stage: str | None
    stage_entered_at: datetime | None
    started_at: datetime | None
    ended_at: datetime | None
    last_seq: int

    @classmethod
    def of(cls, state: DealState) -> DealSnapshot:
        return cls(
            deal_id=state.deal_id,
            process=state.process,
            version=state.version,
            owner=state.owner,
            value=state.value,
            status=state.status,
            stage=state.stage,
            stage_entered_at=state.stage_entered_at,
            started_at=state.started_at,
            ended_at=state.ended_at,
            last_seq=state.last_seq,
        )


class AppendEvents(BaseModel):
    model_config = ConfigDict(frozen=True)

    deal_id: str
    events: list[DealEvent]
    snapshot: DealSnapshot
