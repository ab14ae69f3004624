"""Carries the deal's events to the event log in batches, at least once.

Events are gathered for up to a flush window (`domain.schedule.flush_due`) and appended by one
activity; the log's key `(deal_id, seq)` makes a retried append write nothing twice. A batch
that holds an outcome or a migration is appended inside the workflow task that recorded it (a
local activity), so a rep's `win` or `lose` returns with the outcome already in the log; such a
batch asks for its events back in the receipt, because Temporal keeps a local activity's
result, not its input, and the audit reads the events from the history. Search attributes are
brought up to date with each append.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from domain.activity_io import APPEND_EVENTS, APPEND_TIMEOUT, AppendEvents, DealSnapshot
    from domain.schedule import URGENT, flush_due
    from workflows.activity_calls import APPEND_RETRY, call
    from workflows.ledger import Ledger
    from workflows.search_attributes import SearchIndex

# however short the flush window, a batch never grows past this many events
MAX_LOG_BATCH = 100


class LogBatcher:
    def __init__(self, ledger: Ledger, persisted_seq: int, flush_seconds: float) -> None:
        self._ledger = ledger
        self.persisted_seq = persisted_seq
        self.flush_seconds = flush_seconds
        self._window = timedelta(seconds=flush_seconds)
        self._index = SearchIndex()

    def unpersisted(self) -> bool:
        return self.persisted_seq < self._ledger.state.last_seq

    def due(self) -> datetime | None:
        """When the events not yet in the log must be appended (None: there are none)."""
        return flush_due(self._ledger.events, self.persisted_seq, self._window, workflow.now())

    def needed(self) -> bool:
        """Append now: the window has passed, the batch is full, the deal has its outcome (the few
        events left go at once), or the run is about to continue as new."""
        due = self.due()
        if due is None:
            return False
        state = self._ledger.state
        return (
            due <= workflow.now()
            or state.last_seq - self.persisted_seq >= MAX_LOG_BATCH
            or state.status != "open"
            or workflow.info().is_continue_as_new_suggested()
        )

    async def flush(self) -> None:
        state = self._ledger.state
        self._index.update(state)
        upto = state.last_seq
        batch = [e for e in self._ledger.events if e.seq > self.persisted_seq]
        in_task = any(isinstance(e, URGENT) for e in batch)
        info = workflow.info()
        append = AppendEvents(
            deal_id=state.deal_id,
            events=batch,
            snapshot=DealSnapshot.of(state),
            run_started_at=info.start_time,
            history_length=info.get_current_history_length(),
            echo=in_task,
        )
        # should the task be lost after an in-task append, its rerun appends again from a later
        # point in the history, which replaces what the lost one wrote (store.event_log)
        await call(APPEND_EVENTS, append, in_task=in_task, timeout=APPEND_TIMEOUT, retry=APPEND_RETRY)
        self.persisted_seq = upto
