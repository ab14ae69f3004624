"""A deal brought over from a CRM export, as events: the same events a deal run here records, at
the instants the export gives, so that metrics, timelines and as-of views read it like any other.

`history_events` retells the stages passed (a move to the next stage is a completion, a jump
ahead a skip, a step back a move back, as `decide` records them); `outcome_events` closes a deal
that the CRM already won or lost. An open deal's workflow starts from these events; a closed one's
go to the log alone.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from definitions.model import ProcessDefinition
from domain.events import (
    DealEvent,
    DealImported,
    DealLost,
    DealStarted,
    DealWon,
    MovedBack,
    StageCompleted,
    StageEntered,
    StageSkipped,
)
from domain.limits import FactsInput, Name, Text

IMPORT_ACTOR = "import"
IMPORT_REASON = "as recorded in the imported history"

# What an imported open deal sends for what the export says is past: `all` everything at once (its
# stage's cadence, proposal and handoff, every overdue reminder and escalation); `future` (what an
# import chooses by default) nothing for the past: overdue rungs are recorded but notify no one,
# the current stage's entry calls for nothing, a rung falling due after the import notifies as
# usual; `none` not even that until a rep moves the deal on. A rep's move calls for everything.
Effects = Literal["none", "future", "all"]


class ImportedVisit(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    stage: Name
    entered_at: datetime
    facts: FactsInput = {}  # recorded when the stage was completed


class ImportedHistory(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    source: Name
    crm_id: Name
    file: Text
    sha256: Name
    row: int
    created_at: datetime
    visits: list[ImportedVisit] = Field(min_length=1)
    # histories started before these fields existed replay as they ran: everything sent
    effects: Effects = "all"
    imported_at: datetime | None = None  # when the import ran: what was due before it is the past


def mutes_entry(history: ImportedHistory | None) -> bool:
    """Whether entering the stage the deal was imported at calls for nothing."""
    return history is not None and history.effects != "all"


def mutes_rung(history: ImportedHistory | None, stage_entered_at: datetime | None, due_at: datetime) -> bool:
    """Whether a reminder rung is recorded without notifying anyone: it belongs to the stage the
    deal was imported at (no rep has moved it since) and fell due before the import, or the import
    chose to send nothing at all until a rep moves the deal."""
    if history is None or history.effects == "all" or history.imported_at is None or stage_entered_at is None:
        return False
    if stage_entered_at > history.imported_at:
        return False  # entered after the import: a rep moved it
    return history.effects == "none" or due_at <= history.imported_at


class ImportedOutcome(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    status: Literal["won", "lost"]
    at: datetime
    reason: Name | None = None  # a lost deal's, one of the definition's reasons


class _Seq:
    def __init__(self, start: int) -> None:
        self.seq = start
        self.events: list[DealEvent] = []

    def __call__(self, cls: type[Any], at: datetime, **fields: Any) -> None:
        # built without validation: every value comes from a validated ImportedHistory or the
        # definition, and a bulk import builds millions of these
        self.seq += 1
        self.events.append(cls.model_construct(seq=self.seq, at=at, actor=IMPORT_ACTOR, **fields))


def history_events(
    d: ProcessDefinition,
    history: ImportedHistory,
    *,
    deal_id: str,
    version: str,
    content_hash: str,
    owner: str,
    value: float | None,
    fields: dict[str, str],
    team: str | None = None,
) -> list[DealEvent]:
    """The deal's start, its provenance, and every stage it passed, up to and into the last."""
    rec = _Seq(0)
    rec(
        DealStarted,
        history.created_at,
        deal_id=deal_id,
        process=d.name,
        version=version,
        content_hash=content_hash,
        owner=owner,
        value=value,
        fields=dict(fields),
        team=team,
    )
    rec(
        DealImported,
        history.created_at,
        source=history.source,
        crm_id=history.crm_id,
        file=history.file,
        sha256=history.sha256,
        row=history.row,
    )
    first = history.visits[0]
    rec(StageEntered, max(first.entered_at, history.created_at), stage=first.stage, via="start")
    for before, visit in zip(history.visits, history.visits[1:], strict=False):
        at = visit.entered_at
        i, j = d.index(before.stage), d.index(visit.stage)
        if j == i + 1:
            rec(StageCompleted, at, stage=before.stage, facts=dict(before.facts))
            rec(StageEntered, at, stage=visit.stage, via="next")
        elif j > i:
            skipped = [s.id for s in d.stages[i + 1 : j]]
            rec(StageSkipped, at, stage=before.stage, to_stage=visit.stage, skipped=skipped, reason=IMPORT_REASON)
            rec(StageEntered, at, stage=visit.stage, via="skip")
        else:
            rec(MovedBack, at, stage=before.stage, to_stage=visit.stage, reason=IMPORT_REASON)
            rec(StageEntered, at, stage=visit.stage, via="back")
    return rec.events


def outcome_events(after: list[DealEvent], last: ImportedVisit, outcome: ImportedOutcome) -> list[DealEvent]:
    """A closed deal's end, after `history_events`: won (its last stage completed) or lost."""
    rec = _Seq(after[-1].seq)
    if outcome.status == "won":
        rec(StageCompleted, outcome.at, stage=last.stage, facts=dict(last.facts))
        rec(DealWon, outcome.at, stage=last.stage)
    else:
        rec(
            DealLost,
            outcome.at,
            stage=last.stage,
            reason=outcome.reason or "",
            note=IMPORT_REASON,
            facts=dict(last.facts),
        )
    return rec.events
