"""The API's public answers, apart from the store's rows and the client's models.

The store's rows follow its tables, so answering with them would make a change to a table a change
to the public contract. These models are the contract instead: each answer is converted from the
row it comes from by `public`, which reads only the fields declared here, so a new column stays
private until it is added below (and to the OpenAPI snapshot, tests/openapi.json), and a column
renamed or dropped under a public field fails the conversion instead of changing the answer.
"""

from __future__ import annotations

from datetime import datetime
from typing import TypeVar

from pydantic import BaseModel, Field

from domain.commands import MissingFact
from domain.pending import Pending
from domain.state import DealState

P = TypeVar("P", bound=BaseModel)


def public(schema: type[P], row: object) -> P:
    """`row` (a store row, a client model) as the public `schema`, field by field by name."""
    return schema.model_validate(row, from_attributes=True)


class DealSummary(BaseModel):
    """A deal as lists and the board show it (from the `deals` projection)."""

    deal_id: str
    process: str
    version: str
    owner: str
    value: float | None
    status: str
    stage: str | None
    stage_entered_at: datetime | None
    started_at: datetime | None
    ended_at: datetime | None
    last_seq: int = Field(description="the deal's last event in the log")
    touches: int
    team: str | None = None
    stage_sla_breaches: int = Field(default=0, description="since the deal entered its current stage")
    stage_escalation: int = Field(default=0, description="the highest escalation rung since then, 0 for none")


class DealPage(BaseModel):
    items: list[DealSummary]
    offset: int
    limit: int
    next_offset: int | None = Field(description="the offset of the next page; null on the last")


class LinkedDeal(BaseModel):
    """A deal of a follow-on chain."""

    deal_id: str
    process: str
    version: str
    status: str
    stage: str | None
    value: float | None
    customer: str | None
    follows: str | None
    follow_kind: str | None
    started_at: datetime | None
    depth: int = Field(description="0 for the first deal of the chain")


class LogFailure(BaseModel):
    """Events `first_seq`..`last_seq` are missing from the log because their append keeps failing."""

    first_seq: int
    last_seq: int
    error: str
    attempts: int
    since: datetime
    last_at: datetime


class DealStatus(BaseModel):
    state: DealState
    missing_facts: list[MissingFact]
    process_ref: str
    running: bool
    log_failure: LogFailure | None = Field(
        default=None, description="set while the deal's later events are missing from the log: their append fails"
    )
    stale: bool = Field(
        default=False, description="the log had not reached the min_seq asked for within the wait: an older state"
    )
    pending: list[Pending] = Field(
        default=[],
        description="what the deal will do by itself next, soonest first: reminder rungs, escalations, touches",
    )


class CustomerSummary(BaseModel):
    """A customer (the deals' `customer` field) across all their deals and follow-ons."""

    customer: str
    deals: int
    won: int
    lost: int
    open: int
    won_value: float
    follow_ons: int
    follow_ons_won: int
    first_started: datetime | None
    processes: list[str]


class Refusal(BaseModel):
    """A request refused for want of a permission."""

    at: datetime
    actor: str
    role: str | None
    action: str
    target: str | None
    reason: str


class Durations(BaseModel):
    """Seconds."""

    n: int
    median: float | None
    p90: float | None
    mean: float | None


class StageMetrics(BaseModel):
    stage: str
    phase: str
    entered: int
    completed: int
    skipped: int
    moved_back: int
    lost: int
    lost_reasons: dict[str, int]
    converted_strict: int
    converted_any_later: int
    conversion_strict: float | None
    conversion_any_later: float | None
    first_entry: Durations
    cumulative: Durations
    sla_breaches: int
    reminders: int
    escalations: int


class PhaseMetrics(BaseModel):
    phase: str
    entered: int
    lost: int
    converted: int
    conversion: float | None
    time_in_phase: Durations


class DealSetMetrics(BaseModel):
    deals: int
    won: int
    lost: int
    open: int
    win_rate: float | None
    cycle_time: Durations
    weighted_pipeline: float
    touches_per_won_deal: float | None
    deals_with_cadence: int
    share_five_or_more_touches: float | None


class MetricsFilters(BaseModel):
    process: str
    version: str | None = None
    owner: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    as_of: datetime | None = None
    experiment: str | None = None


class Metrics(BaseModel):
    filters: MetricsFilters
    stages: list[StageMetrics]
    phases: list[PhaseMetrics]
    deals: DealSetMetrics


class ProcessMetrics(BaseModel):
    process: str
    version: str | None
    metrics: Metrics


class BoardCard(DealSummary):
    """A deal on the board, with its column's totals (every deal of the column, shown or not)."""

    column_deals: int
    column_weighted: float


class BoardColumn(BaseModel):
    stage: str
    title: str
    phase: str | None
    post_sale: bool
    deals: list[BoardCard]
    count: int = Field(description="every deal in the column, shown or not")
    weighted_value: float


class Board(BaseModel):
    process: str
    version: str = Field(description="the latest version, whose stages set the columns and their order")
    columns: list[BoardColumn]
    deals: int
    stamp: str = Field(description="changes whenever the board would: pages poll and redraw on a change")
