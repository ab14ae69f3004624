"""The current-state read model (`deals`): one row per deal, for listings, the board and chains.

The row is the deal's snapshot after its new events, the attributes it started with (kept from
its first batch on), and the board's marks: the SLA breaches and the highest escalation rung since
it entered its current stage. It never goes back in time: a row is only replaced by a later one.
"""

from __future__ import annotations

from collections.abc import Sequence

from domain.events import (
    DealEvent,
    DealStarted,
    Escalated,
    EventBase,
    MigratedToVersion,
    SlaBreached,
    StageEntered,
)
from store.projections.base import Change, DealBatch
from store.visits import Conn

# (column, array type) of each value a batch gives; `entered` is no column: it tells whether the
# marks start afresh (a new stage) or add to the row's
_VALUES = (
    ("deal_id", "text"),
    ("process", "text"),
    ("version", "text"),
    ("owner", "text"),
    ("value", "float8"),
    ("status", "text"),
    ("stage", "text"),
    ("stage_entered_at", "timestamptz"),
    ("started_at", "timestamptz"),
    ("ended_at", "timestamptz"),
    ("last_seq", "int"),
    ("touches", "int"),
    ("start_owner", "text"),
    ("start_version", "text"),
    ("experiment", "text"),
    ("follows", "text"),
    ("follow_kind", "text"),
    ("customer", "text"),
    ("team", "text"),
    ("stage_sla_breaches", "int"),
    ("stage_escalation", "int"),
    ("entered", "bool"),
)
_COLUMNS = [c for c, _ in _VALUES if c != "entered"]
# set on the deal's first row and kept from then on
_KEPT = ("start_owner", "start_version", "experiment", "follows", "follow_kind", "customer", "team")
_NOW = ("process", "version", "owner", "value", "status", "stage", "stage_entered_at", "started_at", "ended_at")

_UPSERT = f"""
WITH b AS (
    SELECT * FROM unnest({", ".join(f"${i + 1}::{t}[]" for i, (_, t) in enumerate(_VALUES))})
        AS b({", ".join(c for c, _ in _VALUES)})
)
INSERT INTO deals AS d ({", ".join(_COLUMNS)}, updated_at)
SELECT {", ".join(_COLUMNS)}, now() FROM b
ON CONFLICT (deal_id) DO UPDATE SET
    {", ".join(f"{c} = EXCLUDED.{c}" for c in (*_NOW, "last_seq", "touches"))},
    {", ".join(f"{c} = coalesce(d.{c}, EXCLUDED.{c})" for c in _KEPT)},
    stage_sla_breaches = CASE WHEN (SELECT entered FROM b WHERE b.deal_id = EXCLUDED.deal_id)
        THEN EXCLUDED.stage_sla_breaches ELSE d.stage_sla_breaches + EXCLUDED.stage_sla_breaches END,
    stage_escalation = CASE WHEN (SELECT entered FROM b WHERE b.deal_id = EXCLUDED.deal_id)
        THEN EXCLUDED.stage_escalation ELSE greatest(d.stage_escalation, EXCLUDED.stage_escalation) END,
    updated_at = now()
WHERE d.last_seq < EXCLUDED.last_seq
"""


def board_marks(new: Sequence[DealEvent]) -> tuple[bool, int, int]:
    """What new events change on the board's card: whether the deal entered a stage (which starts
    the counts afresh), and the SLA breaches and highest escalation rung after that entry."""
    entered = [i for i, e in enumerate(new) if isinstance(e, StageEntered | MigratedToVersion)]
    after = new[entered[-1] + 1 :] if entered else new
    breaches = sum(isinstance(e, SlaBreached) for e in after)
    rung = max((e.level for e in after if isinstance(e, Escalated)), default=0)
    return bool(entered), breaches, rung


def values(b: DealBatch) -> tuple[object, ...]:
    """The batch's values, in the order of `_VALUES`."""
    s = b.snapshot
    started = next((e for e in b.new if isinstance(e, DealStarted)), None)
    entered, breaches, rung = board_marks(b.new)
    return (
        s.deal_id,
        s.process,
        s.version,
        s.owner,
        s.value,
        s.status,
        s.stage,
        s.stage_entered_at,
        s.started_at,
        s.ended_at,
        s.last_seq,
        s.touches,
        started.owner if started else None,
        started.version if started else None,
        started.experiment if started else None,
        started.follows if started else None,
        started.follow_kind if started else None,
        started.fields.get("customer") if started else None,
        started.team if started else None,
        breaches,
        rung,
        entered,
    )


class DealRows:
    """Every event moves the row on (its last_seq, at least)."""

    reads: tuple[type[EventBase], ...] = (EventBase,)

    async def apply(self, conn: Conn, changes: Sequence[Change]) -> None:
        rows = [values(c.batch) for c in changes]
        await conn.execute(_UPSERT, *([r[i] for r in rows] for i in range(len(_VALUES))))


PROJECTION = DealRows()
