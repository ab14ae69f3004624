"""Bringing a CRM's deals over: read the export, plan, then start the open deals as workflows at
the stage they reached and write the closed ones to the log as history.

Safe to run twice and safe to stop: every deal brought over is recorded under its source and CRM
id (`imported_deals`), a closed deal in the same transaction as its history, so a second run adds
nothing and a stopped one resumes where it stopped. A deal with any problem is not taken at all.
"""

from __future__ import annotations

import asyncio
import ctypes
import multiprocessing
import os
import signal
import sys
import uuid
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel

from app import deal_service, permissions
from app.context import Context
from app.errors import Refused
from crm import mapping as mappings
from crm import sources
from crm.effects import messages_at_once
from crm.plan import ImportPlan, PlannedDeal, plan
from crm.table import ExportError, ReadOptions
from definitions.loader import PinnedDefinition
from domain.events import DealImported
from domain.imports import Effects, outcome_events
from store import event_log, history_load, imports

CLOSED_BATCH = 2000  # closed deals per transaction: a stop loses at most one batch's work
OPEN_AT_ONCE = 16  # open deals started concurrently
PR_SET_PDEATHSIG = 1  # prctl(2): the signal a process gets when its parent dies

Progress = Callable[[str, int, int], None]  # what, done, of


class ImportReport(BaseModel):
    import_id: str | None
    dry_run: bool
    source: str
    process: str
    version: str
    rows: int
    starts_per_stage: dict[str, int]
    closed: dict[str, int]  # won, lost
    already_imported: int
    started: int
    recorded: int
    effects: Effects
    messages: dict[str, int]  # what starting the open deals sends at once (crm/effects.py)
    problems: list[str]


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise Refused(f"{name!r} is not a time zone (e.g. UTC, Europe/Oslo)", code="invalid_request") from None


async def read(
    c: Context,
    source: str,
    files: list[str],
    *,
    process: str,
    mapping_file: str | None,
    time_zone: str = "UTC",
    pipeline: str | None = None,
    delimiter: str = ",",
    encoding: str = "utf-8-sig",
) -> tuple[ImportPlan, list[dict[str, str]]]:
    """The plan of an import, and the files it reads (name and SHA-256)."""
    pinned = await c.definition(process)
    tz = zone(time_zone)
    try:
        if mapping_file is None:
            if source != "csv":
                raise Refused(
                    f"a {source} import needs a mapping file: its stage names are the CRM's",
                    code="invalid_request",
                    details={"input": "mapping"},
                )
            mapping, mapping_name = mappings.identity(pinned.definition), "(the process's own stage ids)"
        else:
            mapping, mapping_name = mappings.load(mapping_file), Path(mapping_file).name
        options = ReadOptions(
            delimiter=delimiter, encoding=encoding, columns=mapping.reader_columns(), mapping_name=mapping_name
        )
        if source == "salesforce":
            parsed = sources.salesforce(files[0], files[1], tz, options)
        elif source == "hubspot":
            parsed = sources.hubspot(files[0], pipeline or "", tz, options)
        elif source == "pipedrive":
            parsed = sources.pipedrive(files[0], tz, options)
        else:
            parsed = sources.generic(files[0], tz, options)
    except ExportError as exc:
        about = {"input": exc.input} | ({"suggested": exc.suggested} if exc.suggested else {}) if exc.input else None
        raise Refused(str(exc), code="invalid_export", details=about) from None
    except mappings.MappingError as exc:
        raise Refused(str(exc), code="invalid_export") from None
    return plan(parsed, mapping, pinned, source=source, mapping_name=mapping_name), parsed.files


async def runs(c: Context, limit: int = 20) -> list[dict[str, Any]]:
    """The latest runs with how each ended; asking is what finds a killed run as killed."""
    if limit < 1:
        raise Refused(f"a limit of {limit} runs: give 1 or more", code="invalid_request", details={"input": "limit"})
    return await imports.runs(c.pool, limit)


async def run(
    c: Context,
    the_plan: ImportPlan,
    files: list[dict[str, str]],
    *,
    actor: str,
    dry_run: bool,
    effects: Effects = "future",
    progress: Progress | None = None,
) -> ImportReport:
    await permissions.require(c, actor, "import", the_plan.process)
    if the_plan.blocking and not dry_run:
        raise Refused(
            "the mapping must be fixed first; nothing was imported:\n" + "\n".join(str(p) for p in the_plan.blocking),
            code="invalid_mapping",
            details=[str(p) for p in the_plan.blocking],
        )
    done = await imports.already(c.pool, the_plan.source, [d.crm_id for d in the_plan.deals])
    todo = [d for d in the_plan.deals if d.crm_id not in done]
    taken = await _taken(c, todo)  # ids another deal holds: refused here, so the dry run says so too
    todo = [d for d in todo if d.deal_id not in taken]
    remaining = the_plan.model_copy(update={"deals": todo})
    now = datetime.now(UTC)
    pinned = await c.definition(the_plan.process, the_plan.version)
    report = ImportReport(
        import_id=None,
        dry_run=dry_run,
        source=the_plan.source,
        process=the_plan.process,
        version=the_plan.version,
        rows=the_plan.rows,
        starts_per_stage=remaining.starts_per_stage(),
        closed=remaining.outcomes(),
        already_imported=len(done),
        started=0,
        recorded=0,
        effects=effects,
        messages=messages_at_once(pinned, remaining.open, effects, now),
        problems=[str(p) for p in the_plan.blocking + the_plan.problems] + [taken[i] for i in sorted(taken)],
    )
    if dry_run:
        return report
    import_id = str(uuid.uuid4())
    report.import_id = import_id
    async with imports.running(
        c.pool,
        import_id,
        source=the_plan.source,
        process=the_plan.process,
        version=the_plan.version,
        files=files,
        by=actor,
    ) as run_record:
        await _bring_over(c, the_plan, remaining, import_id, actor, effects, now, report, progress)
        run_record.counts = report.model_dump(include={"started", "recorded", "already_imported", "messages"})
        run_record.counts["problems"] = len(report.problems)
    return report


async def _bring_over(
    c: Context,
    the_plan: ImportPlan,
    remaining: ImportPlan,
    import_id: str,
    actor: str,
    effects: Effects,
    now: datetime,
    report: ImportReport,
    progress: Progress | None,
) -> None:
    closed = remaining.closed
    if closed:
        await _record_all_closed(c, the_plan, closed, import_id, report, progress)
    opened = remaining.open
    gate = asyncio.Semaphore(OPEN_AT_ONCE)

    async def start(deal: PlannedDeal) -> None:
        async with gate:
            told = deal.history.model_copy(update={"effects": effects, "imported_at": now})
            if await _start_open(c, the_plan, deal.model_copy(update={"history": told}), import_id, actor, report):
                report.started += 1
                if progress:
                    progress("open deals started", report.started, len(opened))

    await asyncio.gather(*(start(d) for d in opened))


async def _taken(c: Context, deals: list[PlannedDeal]) -> dict[str, str]:
    """Of these deals, those whose id a deal not of this CRM deal already holds, with the problem;
    an open deal an earlier run started but did not mark is this import's, and is marked."""
    ids = [d.deal_id for d in deals]
    found = await imports.existing_deals(c.pool, ids)
    out = {}
    for deal in deals:
        if deal.deal_id in found and not (deal.outcome is None and await _ours(c, deal)):
            out[deal.deal_id] = f"{deal.history.file}:{deal.history.row}: deal {deal.deal_id} already exists"
    return out


@contextmanager
def worker_pool(workers: int) -> Iterator[ProcessPoolExecutor]:
    """Processes that build closed deals' histories and stop with the import: on Linux the kernel
    ends each when the import's process dies, even killed outright; a failed or interrupted import
    ends them before it re-raises, instead of waiting for the batches still being built."""
    context = multiprocessing.get_context("spawn")
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_die_with_parent)
    try:
        yield pool
    except BaseException:
        for process in list(pool._processes.values()):  # the executor offers no other way to stop them now
            process.terminate()
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown(wait=True)


def _die_with_parent() -> None:
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() == 1:  # the parent died before the signal was asked for
        os._exit(1)


def build_closed(pinned: PinnedDefinition, batch: list[PlannedDeal]) -> list[history_load.History]:
    """The full histories of closed deals: pure and CPU-bound, so batches are built in worker
    processes while the database writes the batch before."""
    histories = []
    for deal in batch:
        assert deal.outcome is not None
        told = deal.retold(pinned)
        events = told + outcome_events(told, deal.history.visits[-1], deal.outcome)
        histories.append(history_load.History(deal.deal_id, pinned.name, pinned.version, events))
    return histories


def _build_rows(pinned: PinnedDefinition, batch: list[PlannedDeal]) -> history_load.Rows:
    return history_load.rows_of(build_closed(pinned, batch))


async def _record_all_closed(
    c: Context,
    the_plan: ImportPlan,
    closed: list[PlannedDeal],
    import_id: str,
    report: ImportReport,
    progress: Progress | None,
) -> None:
    pinned = await c.definition(the_plan.process, the_plan.version)
    batches = [closed[i : i + CLOSED_BATCH] for i in range(0, len(closed), CLOSED_BATCH)]
    with ExitStack() as stack:
        if len(batches) > 1:  # one batch is not worth starting processes for
            workers = min(len(batches), os.cpu_count() or 1)
            pool = stack.enter_context(worker_pool(workers))
            loop = asyncio.get_running_loop()
            built: list[Awaitable[history_load.Rows]] = [
                loop.run_in_executor(pool, _build_rows, pinned, batch) for batch in batches
            ]
        else:
            built = [_built_here(pinned, closed)]
        for batch, rows in zip(batches, built, strict=True):
            report.recorded += await _record_closed(c, the_plan, batch, await rows, import_id, report)
            if progress:
                progress("closed deals recorded", report.recorded, len(closed))


async def _built_here(pinned: PinnedDefinition, batch: list[PlannedDeal]) -> history_load.Rows:
    return _build_rows(pinned, batch)


async def _record_closed(
    c: Context,
    the_plan: ImportPlan,
    batch: list[PlannedDeal],
    rows: history_load.Rows,
    import_id: str,
    report: ImportReport,
) -> int:
    """One batch in one transaction: its history, its projections and its import marks."""
    ids = [d.deal_id for d in batch]
    taken = await imports.existing_deals(c.pool, ids)
    for deal in batch:
        if deal.deal_id in taken:
            report.problems.append(f"{deal.history.file}:{deal.history.row}: deal {deal.deal_id} already exists")
    if taken:
        rows = rows.without(taken)
    heads = rows.heads()
    marks = [_mark(the_plan, d, import_id, "closed", heads[d.deal_id]) for d in batch if d.deal_id not in taken]
    await imports.record_closed(c.pool, rows, marks)
    return len(marks)


def _mark(
    the_plan: ImportPlan, deal: PlannedDeal, import_id: str, kind: str, head: tuple[int, str] | None = None
) -> imports.Mark:
    """The import's record of a deal; for a closed one, the length and last hash of the chain
    it wrote, which `audit verify` checks the log against."""
    h = deal.history
    events, head_hash = head if head is not None else (None, None)
    return (the_plan.source, deal.crm_id, deal.deal_id, import_id, kind, h.file, h.sha256, h.row, events, head_hash)


async def _start_open(
    c: Context, the_plan: ImportPlan, deal: PlannedDeal, import_id: str, actor: str, report: ImportReport
) -> bool:
    try:
        await deal_service.start_deal(
            c,
            the_plan.process,
            deal.deal_id,
            deal.owner,
            actor=actor,
            value=deal.value,
            fields=deal.fields,
            version=the_plan.version,
            imported=deal.history,
            permission="import",
        )
    except Refused as exc:
        if exc.code != "deal_exists" or not await _ours(c, deal):
            report.problems.append(f"{deal.history.file}:{deal.history.row}: deal {deal.deal_id}: {exc.message}")
            return False
        # an earlier run started it and stopped before recording it: record it now
    await imports.record_open(c.pool, _mark(the_plan, deal, import_id, "open"))
    return True


async def _ours(c: Context, deal: PlannedDeal) -> bool:
    """Whether the deal that exists under this id is this CRM deal, started by an earlier run."""
    events = await event_log.read(c.pool, deal.deal_id)
    marker = next((e for e in events if isinstance(e, DealImported)), None)
    return marker is not None and (marker.source, marker.crm_id) == (deal.history.source, deal.crm_id)
