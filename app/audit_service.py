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

from app import deal_reads
from app.context import Context
from app.errors import DealflowError, NotFound
from audit import bundle as bundles
from audit import repair as repairs
from audit.history import AuditError, deal_events, fetch_deal, pending_appends
from audit.timeline import Entry, logged_timeline, timeline
from audit.verify import Finding, LogRow, Verdict, check_chain, verify
from domain.commands import workflow_id
from domain.events import DealImported
from domain.state import DealState, as_of
from store import access_log, event_log, imports
from store import log_rows as log_rows_store
from store.access_log import Refusal


async def histories(c: Context, deal_id: str) -> list[WorkflowHistory]:
    try:
        return await fetch_deal(c.temporal, deal_id)
    except AuditError as exc:
        raise NotFound(str(exc), code="unknown_deal") from None


async def log_rows(c: Context, deal_id: str) -> list[LogRow]:
    return [LogRow.of(r) for r in await log_rows_store.rows(c.pool, deal_id)]


async def _imported_closed(c: Context, deal_id: str) -> dict[str, Any] | None:
    """Where a deal that never ran here came from (a closed deal imported from a CRM), or None."""
    found = await imports.provenance(c.pool, deal_id)
    return found if found is not None and found["kind"] == "closed" else None


async def deal_timeline(c: Context, deal_id: str) -> list[Entry]:
    """From Temporal's history; for a closed deal imported from a CRM (no workflow ever ran it),
    from the log, which holds all of it, its provenance first."""
    try:
        return timeline(await histories(c, deal_id))
    except NotFound:
        if await _imported_closed(c, deal_id) is None:
            raise
    events = [e for e in (r.event() for r in await log_rows(c, deal_id)) if e is not None]
    return logged_timeline(events)


async def state_as_of(c: Context, deal_id: str, at: datetime) -> DealState:
    events = [e for e in (r.event() for r in await log_rows(c, deal_id)) if e is not None]
    if not events:
        events = deal_events(await histories(c, deal_id))
    state = as_of(events, at)
    if state.last_seq == 0:
        raise DealflowError(f"deal {deal_id!r} had not started at {at.isoformat()}", code="not_started")
    return state


async def verify_running(c: Context, deal_id: str) -> Verdict:
    """Verify a deal that may be running: the log is read before and after its history, so that
    what is appended meanwhile is neither missed nor taken for a forgery.

    An append Temporal has scheduled and not seen complete is in flight while its first attempt
    runs, and while it is retried because its worker stopped answering (a timeout). One whose
    attempt failed (the log or the database refused it) is why the log lacks those events: they
    are reported as missing, with the append's last failure.
    """
    earlier = await log_rows(c, deal_id)
    try:
        found = await histories(c, deal_id)
    except NotFound:
        if not earlier and await _imported_closed(c, deal_id) is None:
            raise
        return await _verify_unrun(c, deal_id, earlier)
    rows = await log_rows(c, deal_id)
    pending = pending_appends(found)
    failing = await _failing_appends(c, deal_id, set(pending)) if pending else {}
    moving = {seq for aid, seqs in pending.items() if aid not in failing for seq in seqs}
    verdict = verify(deal_id, rows, deal_events(found), in_flight=moving, earlier=earlier)
    for aid, why in failing.items():
        verdict.notes.append(f"the append of seqs {min(pending[aid])}..{max(pending[aid])} is failing: {why}")
    if moving:
        verdict.notes.append(f"{len(moving)} events are being appended now (the append's first attempt)")
    return verdict


async def _failing_appends(c: Context, deal_id: str, activity_ids: set[str]) -> dict[str, str]:
    """Of the deal's pending appends, those that have failed at least once, with their last failure."""
    described = await c.temporal.get_workflow_handle(workflow_id(deal_id)).describe()
    out = {}
    for pending in described.raw_description.pending_activities:
        if pending.activity_id not in activity_ids or pending.attempt <= 1 or not pending.HasField("last_failure"):
            continue
        failure = pending.last_failure
        if failure.HasField("timeout_failure_info"):
            continue  # its worker stopped answering (killed, restarted): retried elsewhere, in flight
        out[pending.activity_id] = f"attempt {pending.attempt}, last failure: {failure.message}"
    return out


async def _verify_unrun(c: Context, deal_id: str, rows: list[LogRow]) -> Verdict:
    """A deal the log holds and Temporal does not: a closed deal imported from a CRM is checked
    against its chain and the import's record of it; any other is a finding."""
    origin = await _imported_closed(c, deal_id)
    verdict = Verdict(deal_id, len(rows), 0, check_chain(rows))
    if origin is None:
        why = f"the log holds {len(rows)} events of this deal, but Temporal has no history of it and no import made it"
        verdict.findings.append(Finding("no_history", why, tuple(r.seq for r in rows)))
        return verdict
    verdict.findings += imported_findings(rows, origin)
    verdict.notes.append(
        f"imported closed deal: no Temporal history; from {origin['source']} file {origin['file']} "
        f"(SHA-256 {origin['sha256']}), row {origin['row_number']}, by {origin['started_by']}"
    )
    return verdict


def imported_findings(rows: list[LogRow], origin: dict[str, Any]) -> list[Finding]:
    """Where the log of an imported closed deal departs from what the import recorded: the
    source row its DealImported event names, and the length and last hash of the chain it wrote."""
    out = []
    marker = next((e for e in (r.event() for r in rows) if isinstance(e, DealImported)), None)
    told = (origin["source"], origin["crm_id"], origin["file"], origin["sha256"], origin["row_number"])
    if marker is None:
        out.append(Finding("import_record", "no DealImported event in the log, though an import recorded this deal"))
    elif (marker.source, marker.crm_id, marker.file, marker.sha256, marker.row) != told:
        why = (
            f"seq {marker.seq}: DealImported names {marker.source} {marker.crm_id} in {marker.file} row {marker.row}, "
            f"the import recorded {told[0]} {told[1]} in {told[2]} row {told[4]}"
        )
        out.append(Finding("import_record", why, (marker.seq,)))
    if origin.get("head_hash") is not None:
        last = max(rows, key=lambda r: r.seq, default=None)
        head = (last.seq, last.hash) if last else (0, None)
        if head != (origin["events"], origin["head_hash"]):
            why = (
                f"the import wrote {origin['events']} events ending in hash {origin['head_hash'][:12]}; "
                f"the log holds {head[0]} ending in {(head[1] or '-')[:12]} (rewritten?)"
            )
            out.append(Finding("import_record", why, (head[0],)))
    return out


async def deals_in_temporal(c: Context, *, process: str | None = None, since: datetime | None = None) -> list[str]:
    """The deals whose workflows Temporal lists (of a process, started since an instant)."""
    query = 'WorkflowType = "Deal"'
    if process:
        query += f' AND ProcessName = "{process}"'
    if since:
        query += f' AND StartTime >= "{since.isoformat()}"'
    return sorted({w.id.removeprefix("deal-") async for w in c.temporal.list_workflows(query)})


async def deals_to_verify(c: Context, *, process: str | None = None, since: datetime | None = None) -> list[str]:
    """Every deal Temporal or the log knows, open or closed, imported or not: a deal missing
    from either side is one verify must see."""
    ids = set(await deals_in_temporal(c, process=process, since=since))
    ids.update(await event_log.deal_ids(c.pool, process=process, since=since))
    return sorted(ids)


async def repair(c: Context, deal_id: str) -> int:
    """Append what the deal's log lacks after its last event, from Temporal's history
    (audit.repair); returns how many events were appended."""
    try:
        return await repairs.fill(c.temporal, c.pool, deal_id)
    except repairs.RepairError as exc:
        raise DealflowError(str(exc), code="cannot_repair") from None


async def export(c: Context, deal_id: str) -> dict[str, Any]:
    """A self-contained bundle for offline replay and verify.

    As verify does, the log is read around the history, so that the bundle holds the rows the
    history accounts for and none appended after it was read.
    """
    earlier = {r.seq for r in await log_rows(c, deal_id)}
    found = await histories(c, deal_id)
    told = {e.seq for e in deal_events(found)}
    rows = [r for r in await log_rows(c, deal_id) if r.seq in earlier or r.seq in told]
    state = await deal_reads.logged_state(c, deal_id)
    pinned = await c.definition(state.process, state.version)
    return bundles.build(deal_id, found, rows, pinned.model_dump(mode="json"))


async def refusals(c: Context, *, since: datetime | None = None, limit: int = 1000) -> list[Refusal]:
    """Requests refused for want of a permission, newest first."""
    return await access_log.read(c.pool, since=since, limit=limit)
