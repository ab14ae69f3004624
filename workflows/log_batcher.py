"""Carries the deal's events to the event log in batches, at least once, never ahead of Temporal.

Events are gathered for up to a flush window (`domain.schedule.flush_due`) and appended by one
activity; the log's key `(deal_id, seq)` makes a retried append write nothing twice. The append
is always an activity of its own, never a local one: its input, the batch, is in Temporal's
history before any of it is written, so every row of the log is an event Temporal has recorded,
and no row ever needs to be taken back. (A local activity runs before its workflow task is
recorded; were that task lost, its rerun would record different events than the ones written.)
A start, an outcome or a migration is flushed at once, and the rep's call waits for it
(`logged`). Search attributes are brought up to date with each append.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from domain.activity_io import APPEND_EVENTS, APPEND_TIMEOUT, AppendEvents, DealSnapshot
    from domain.events import DealEvent
    from domain.schedule import URGENT, flush_due
    from workflows.activity_calls import APPEND_RETRY
    from workflows.ledger import Ledger
    from workflows.search_attributes import SearchIndex

# however long the flush window, or the wait for an append, a batch holds at most this many events
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

    def needed(self, continuing: bool) -> bool:
        """Append now: the window has passed, the batch is full, the deal has its outcome (the few
        events left go at once), or the run is about to continue as new (`continuing`)."""
        due = self.due()
        if due is None:
            return False
        state = self._ledger.state
        return (
            due <= workflow.now()
            or state.last_seq - self.persisted_seq >= MAX_LOG_BATCH
            or state.status != "open"
            or continuing
        )

    def holds_urgent(self) -> bool:
        """Among the events not yet in the log is a start, an outcome or a migration."""
        return any(isinstance(e, URGENT) for e in self._unlogged())

    def _unlogged(self) -> list[DealEvent]:
        return [e for e in self._ledger.events if e.seq > self.persisted_seq]

    async def flush(self) -> None:
        state = self._ledger.state
        self._index.update(state)
        batch = self._unlogged()[:MAX_LOG_BATCH]
        info = workflow.info()
        append = AppendEvents(
            deal_id=state.deal_id,
            events=batch,
            snapshot=DealSnapshot.of(state),
            run_started_at=info.start_time,
            history_length=info.get_current_history_length(),
        )
        await workflow.execute_activity(
            APPEND_EVENTS, append, start_to_close_timeout=APPEND_TIMEOUT, retry_policy=APPEND_RETRY
        )
        self.persisted_seq = batch[-1].seq

    async def logged(self, seq: int, within: timedelta) -> bool:
        """Wait until event `seq` is in the log, for at most `within` (the database may be down:
        the append then goes on retrying, and the caller has its answer meanwhile)."""
        try:
            await workflow.wait_condition(lambda: self.persisted_seq >= seq, timeout=within)
        except TimeoutError:
            return False
        return True
