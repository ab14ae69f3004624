"""What a read model is to the log: the events it reads, and how it takes in deals' new events.

A projection never reads the log back and never opens a transaction: it is given each deal's
events new to the log, with what its rows held before (`Change`, read once for every projection),
and writes its rows in the caller's transaction, one statement for all the deals given. So the
live append (one deal, a few events) and the bulk load (many deals, whole histories) keep the
same rows by the same code, and a read model can never run ahead of, or behind, the log.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from domain.activity_io import DealSnapshot
from domain.events import DealEvent, EventBase
from store.aggregates.groups import Held
from store.visits import Conn, Visit


@dataclass(frozen=True)
class DealBatch:
    """One deal's events that are new to the log, in order, and the deal's state after them."""

    deal_id: str
    process: str
    version: str
    snapshot: DealSnapshot
    new: Sequence[DealEvent]

    @property
    def fresh(self) -> bool:
        """The log held nothing of the deal before these events: there is nothing to read back."""
        return self.new[0].seq == 1


@dataclass
class Change:
    """A batch with what the read models go on from: the deal's visits before and after the new
    events (computed once, for the visits and the figures), and what the aggregates held of it.

    `visits_before` is None when no new event is one a visit or a figure is computed from.
    """

    batch: DealBatch
    visits_before: list[Visit] | None = None
    visits_after: list[Visit] = field(default_factory=list)
    visits_changed: list[Visit] = field(default_factory=list)
    held: Held | None = None


class Projection(Protocol):
    """A read model kept from the log."""

    @property
    def reads(self) -> tuple[type[EventBase], ...]:
        """The events that change its rows: a batch without any is not given to it."""
        ...

    async def apply(self, conn: Conn, changes: Sequence[Change]) -> None:
        """Write what the new events change, inside the caller's transaction."""
        ...
