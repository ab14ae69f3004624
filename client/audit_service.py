"""What an auditor asks of one deal: its timeline from Temporal's history, its state at an
instant, whether its log matches the history, and an export to check offline.

The CLI and the web app both call these. The timeline, the verify and the export read the deal's
history from Temporal (an auditor's question is about what Temporal recorded); the state as of an
instant is folded from the log, and from the history only for a deal the log does not hold.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from temporalio.client import WorkflowHistory

from audit import bundle as bundles
from audit.history import AuditError, deal_events, fetch_deal, in_flight
from audit.timeline import Entry, logged_timeline, timeline
from audit.verify import LogRow, Verdict, check_chain, verify
from client.api import DealflowClient, DealflowError, NotFound
from domain.state import DealState, as_of
from store import access_log, imports
from store.access_log import Refusal


async def histories(c: DealflowClient, deal_id: str) -> list[WorkflowHistory]:
    try:
        return await fetch_deal(c.temporal, deal_id)
    except AuditError as exc:
        raise NotFound(str(exc), code="unknown_deal") from None


async def log_rows(c: DealflowClient, deal_id: str) -> list[LogRow]:
    rows = await c.pool.fetch(
        "SELECT seq, payload::text AS payload, prev_hash, hash FROM deal_events WHERE deal_id = $1 ORDER BY seq",
        deal_id,
    )
    return [LogRow.of(r) for r in rows]


async def _imported_closed(c: DealflowClient, deal_id: str) -> dict[str, Any] | None:
    """Where a deal that never ran here came from (a closed deal imported from a CRM), or None."""
    found = await imports.provenance(c.pool, deal_id)
    return found if found is not None and found["kind"] == "closed" else None


async def deal_timeline(c: DealflowClient, deal_id: str) -> list[Entry]:
    """From Temporal's history; for a closed deal imported from a CRM (no workflow ever ran it),
    from the log, which holds all of it, its provenance first."""
    try:
        return timeline(await histories(c, deal_id))
    except NotFound:
        if await _imported_closed(c, deal_id) is None:
            raise
    events = [e for e in (r.event() for r in await log_rows(c, deal_id)) if e is not None]
    return logged_timeline(events)


async def state_as_of(c: DealflowClient, deal_id: str, at: datetime) -> DealState:
    events = [e for e in (r.event() for r in await log_rows(c, deal_id)) if e is not None]
    if not events:
        events = deal_events(await histories(c, deal_id))
    state = as_of(events, at)
    if state.last_seq == 0:
        raise DealflowError(f"deal {deal_id!r} had not started at {at.isoformat()}", code="not_started")
    return state


async def verify_running(c: DealflowClient, deal_id: str) -> Verdict:
    """Verify a deal that may be running: the log is read before and after its history, so that
    what is appended meanwhile is neither missed nor taken for a forgery."""
    earlier = await log_rows(c, deal_id)
    try:
        found = await histories(c, deal_id)
    except NotFound:
        origin = await _imported_closed(c, deal_id)
        if origin is None:
            raise
        # no workflow ever ran it: its chain is all there is to verify, and where it came from
        verdict = Verdict(deal_id, len(earlier), 0, check_chain(earlier))
        verdict.notes.append(
            f"imported closed deal: no Temporal history; from {origin['source']} file {origin['file']} "
            f"(SHA-256 {origin['sha256']}), row {origin['row_number']}, by {origin['started_by']}"
        )
        return verdict
    rows = await log_rows(c, deal_id)
    return verify(deal_id, rows, deal_events(found), in_flight=in_flight(found), earlier=earlier)


async def export(c: DealflowClient, deal_id: str) -> dict[str, Any]:
    """A self-contained bundle for offline replay and verify.

    As verify does, the log is read around the history, so that the bundle holds the rows the
    history accounts for and none appended after it was read.
    """
    earlier = {r.seq for r in await log_rows(c, deal_id)}
    found = await histories(c, deal_id)
    told = {e.seq for e in deal_events(found)}
    rows = [r for r in await log_rows(c, deal_id) if r.seq in earlier or r.seq in told]
    state = await c.logged_state(deal_id)
    pinned = await c.definition(state.process, state.version)
    return bundles.build(deal_id, found, rows, pinned.model_dump(mode="json"))


async def refusals(c: DealflowClient, *, since: datetime | None = None, limit: int = 1000) -> list[Refusal]:
    """Requests refused for want of a permission, newest first."""
    return await access_log.read(c.pool, since=since, limit=limit)
