"""The deal's events, the state folded from them, and the effects they call for.

Every part of the deal workflow records through one ledger, so the state is always the fold of
the events, and every event's effects are queued the moment it is recorded.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from definitions.loader import PinnedDefinition
    from domain import decide
    from domain.effects import Effect, effects_of, template_values
    from domain.events import DealEvent
    from domain.state import DealState, apply, fold


class Ledger:
    def __init__(self, pinned: PinnedDefinition, events: list[DealEvent]) -> None:
        # the version the deal runs; a migration replaces it
        self.pinned = pinned
        self.events = events
        self.state: DealState = fold(events)
        self.effects: list[Effect] = []

    def record(self, events: list[DealEvent], *, effects: bool = True) -> None:
        """Apply and keep `events`; with `effects` off they call for nothing (a history retold)."""
        for event in events:
            self.state = apply(self.state, event)
            self.events.append(event)
            if effects:
                self.effects.extend(effects_of(self.pinned.definition, self.state, event))

    def note(self, cls: type[Any], at: datetime | None = None, **fields: Any) -> None:
        """Record an event of the engine's own, at the deal's current stage unless told otherwise,
        at `at` (never earlier than the deal's last event) or now."""
        fields.setdefault("stage", self.state.stage)
        when = workflow.now() if at is None else max(at, self.events[-1].at if self.events else at)
        self.record(decide.system_event(self.state, cls, when, **fields))

    def values(self) -> dict[str, str]:
        return template_values(self.pinned.definition, self.state)
