"""The four export shapes read into `CrmDeal`s: Salesforce, HubSpot, Pipedrive, and a generic CSV.

Each reader reports a row it cannot take as a `Problem` with its file and line, and goes on: one
bad row never hides the others, and the import takes no deal that has a problem. A row cut short
or holding a huge cell, an id on two rows (both refused, each naming the other's line) and a
history row of no deal in the export are problems too, never a silent drop.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from crm.dates import BadInstant, parse_amount, parse_instant
from crm.model import CrmDeal, Parsed, Problem, Source, StageChange
from crm.table import DEFAULT, ReadOptions, Row, Table, read

TRUE = {"true", "1", "yes"}


class _RowProblems:
    """Collects a row's problems so that each bad cell is named, not just the first; a row whose
    cells do not line up with the header is named for that alone, as what its cells seem to
    hold (an empty date, say) follows from it."""

    def __init__(self, row: Row, problems: list[Problem]):
        self.origin, self.problems, self.count = row.origin, problems, 0
        self.misread = row.problem is not None
        if row.problem is not None:
            self.problems.append(Problem(where=str(self.origin), message=row.problem))
            self.count = 1

    def instant(self, text: str, what: str, zone: ZoneInfo, *, required: bool = True) -> datetime | None:
        if not text and not required:
            return None
        try:
            return parse_instant(text, zone)
        except BadInstant as exc:
            self.add(f"{what}: {exc}")
            return None

    def amount(self, text: str, what: str) -> float | None:
        try:
            return parse_amount(text)
        except ValueError as exc:
            self.add(f"{what}: {exc}")
            return None

    def add(self, message: str) -> None:
        self.count += 1
        if not self.misread:
            self.problems.append(Problem(where=str(self.origin), message=message))


def _deal(source: Source, table: Table, row: Row, col: dict[str, str | None], **fields: Any) -> CrmDeal:
    """A deal from its export row: the columns every source has (id, name, owner, lost reason)
    read the same way, the facts the mapping file's `columns:` names, the rest as given."""
    return CrmDeal(
        source=source,
        crm_id=row.get(col["id"]),
        name=row.get(col["name"]) or None,
        owner=row.get(col["owner"]) or None,
        lost_reason=row.get(col["reason"]) or None,
        origin=row.origin,
        stage_facts={k: row.get(c) for k, c in _fact_columns(table).items() if row.get(c)},
        **fields,
    )


def _fact_columns(table: Table) -> dict[str, str]:
    """`STAGE.FACT` (our stage id) -> the CRM's column, as the mapping file's `columns:` names."""
    return {k: str(table.column(key=k)) for k in table.options.columns if "." in k}


def _duplicates(table: Table, id_column: str | None, rows: list[Row], what: str, problems: list[Problem]) -> set[str]:
    """Ids on more than one row: which row is the deal cannot be known, so none is taken, and
    each later row names the line of the first."""
    first: dict[str, Row] = {}
    dup: set[str] = set()
    for row in rows:
        crm_id = row.get(id_column)
        if not crm_id:
            continue
        if crm_id in first:
            dup.add(crm_id)
            problems.append(
                Problem(
                    where=str(row.origin),
                    message=f"deal {crm_id}: {what} {crm_id!r} is also on line {first[crm_id].origin.line}: "
                    "one row per deal; neither row is imported",
                )
            )
        else:
            first[crm_id] = row
    for crm_id in sorted(dup):
        problems.append(
            Problem(
                where=str(first[crm_id].origin),
                message=f"deal {crm_id}: {what} {crm_id!r} is on more than one row; neither row is imported",
            )
        )
    return dup


def _check_order(deal: CrmDeal, problems: list[Problem]) -> bool:
    """A history must run forwards: from the deal's creation, stage after stage, to its close."""
    last, last_origin = deal.created_at, deal.origin
    for change in deal.history:
        if change.entered_at < last:
            problems.append(
                Problem(
                    where=str(change.origin),
                    message=f"deal {deal.crm_id}: entered {change.stage!r} at {change.entered_at.isoformat()}, "
                    f"before {last.isoformat()} ({last_origin}): the history runs backwards",
                )
            )
            return False
        if change.exited_at is not None and change.exited_at < change.entered_at:
            problems.append(
                Problem(
                    where=str(change.origin),
                    message=f"deal {deal.crm_id}: left {change.stage!r} at {change.exited_at.isoformat()}, "
                    f"before entering it at {change.entered_at.isoformat()}: the history runs backwards",
                )
            )
            return False
        last, last_origin = change.entered_at, change.origin
    if deal.closed_at is not None and deal.closed_at < last:
        problems.append(
            Problem(
                where=str(deal.origin),
                message=f"deal {deal.crm_id}: closed at {deal.closed_at.isoformat()}, before its last stage change "
                f"at {last.isoformat()} ({last_origin}): the history runs backwards",
            )
        )
        return False
    return True


def _to_the_minute(close: datetime | None, cell: str, history: list[StageChange]) -> datetime | None:
    """A close date the export gives as a bare day, made exact by the last time the deal's own
    stage columns record on that day (HubSpot's `Date exited` of the stage it closed from, or
    `Date entered` of its closed stage): that day's midnight would put the close before them."""
    if close is None or len(cell.strip()) != 10:
        return close
    times = [t for h in history for t in (h.entered_at, h.exited_at) if t is not None]
    return max([close, *(t for t in times if t.astimezone(close.tzinfo).date() == close.date())])


def _finish(deals: list[CrmDeal], problems: list[Problem], *tables: Table) -> Parsed:
    kept = [d for d in deals if _check_order(d, problems)]
    files = [{"file": Path(t.path).name, "sha256": t.sha256} for t in tables]
    return Parsed(deals=kept, problems=problems, rows=sum(len(t.rows) for t in tables), files=files)


def salesforce(opportunities: str, history_csv: str, zone: ZoneInfo, options: ReadOptions = DEFAULT) -> Parsed:
    opp, hist = read(opportunities, options), read(history_csv, options)
    col = {
        "id": opp.column("Id", "Opportunity ID", key="id"),
        "name": opp.column("Name", "Opportunity Name", required=False, key="name"),
        "stage": opp.column("StageName", "Stage", key="stage"),
        "amount": opp.column("Amount", required=False, key="value"),
        "owner": opp.column("Owner Name", "OwnerName", "Owner", "OwnerId", "Opportunity Owner", key="owner"),
        "created": opp.column("CreatedDate", "Created Date", key="created"),
        "close": opp.column("CloseDate", "Close Date", required=False, key="closed"),
        "closed": opp.column("IsClosed", "Closed"),
        "won": opp.column("IsWon", "Won"),
        "reason": opp.column("Loss_Reason__c", "Loss Reason", "LossReason", required=False, key="lost_reason"),
    }
    hcol = {
        "id": hist.column("OpportunityId", "Opportunity ID"),
        "stage": hist.column("StageName", "Stage"),
        "created": hist.column("CreatedDate", "Created Date", "Last Modified"),
    }
    problems: list[Problem] = []
    known = {row.get(col["id"]) for row in opp.rows}
    changes: dict[str, list[tuple[datetime, Row]]] = defaultdict(list)
    bad_history: dict[str, Row] = {}  # an opportunity with a history row that cannot be read
    for row in hist.rows:
        check = _RowProblems(row, problems)
        at = check.instant(row.get(hcol["created"]), "CreatedDate", zone)
        of = row.get(hcol["id"])
        if not of:
            check.add("no OpportunityId")
        elif of not in known:
            check.add(f"a history row of opportunity {of!r}, which {Path(opp.path).name} does not hold")
        if not row.get(hcol["stage"]):
            check.add("no StageName")
        if at is not None and not check.count:
            changes[of].append((at, row))
        elif of in known:
            bad_history.setdefault(of, row)
    duplicated = _duplicates(opp, col["id"], opp.rows, "Id", problems)
    deals = []
    for row in opp.rows:
        crm_id = row.get(col["id"])
        if crm_id in duplicated:
            continue
        check = _RowProblems(row, problems)
        if crm_id in bad_history:
            check.add(f"deal {crm_id}: its history has a row that cannot be taken ({bad_history[crm_id].origin})")
        created = check.instant(row.get(col["created"]), "CreatedDate", zone)
        amount = check.amount(row.get(col["amount"]), "Amount")
        closed, won = row.get(col["closed"]).lower() in TRUE, row.get(col["won"]).lower() in TRUE
        close_date = check.instant(row.get(col["close"]), "CloseDate", zone, required=closed)
        if not crm_id:
            check.add("no Id")
        if not row.get(col["stage"]):
            check.add("no StageName")
        if check.count or created is None:
            continue
        history: list[StageChange] = []
        previous = None
        for at, change in sorted(changes.get(crm_id, []), key=lambda c: (c[0], c[1].origin.line)):
            stage = change.get(hcol["stage"])
            if stage != previous:  # a row that changed the amount or the date, not the stage
                history.append(StageChange(stage=stage, entered_at=at, origin=change.origin))
            previous = stage
        status = ("won" if won else "lost") if closed else "open"
        closed_at = None
        if closed:
            closing = [h for h in history if h.stage == row.get(col["stage"])]
            closed_at = closing[-1].entered_at if closing else close_date
        deals.append(
            _deal(
                "salesforce",
                opp,
                row,
                col,
                value=amount,
                created_at=created,
                status=status,
                closed_at=closed_at,
                current_stage=row.get(col["stage"]),
                history=history,
            )
        )
    return _finish(deals, problems, opp, hist)


def hubspot(deals_csv: str, pipeline: str, zone: ZoneInfo, options: ReadOptions = DEFAULT) -> Parsed:
    table = read(deals_csv, options)
    col = {
        "id": table.column("Record ID", "Deal ID", "Hs Object Id", key="id"),
        "name": table.column("Deal Name", required=False, key="name"),
        "stage": table.column("Deal Stage", key="stage"),
        "pipeline": table.column("Pipeline"),
        "owner": table.column("Deal owner", "Deal Owner", "Owner", key="owner"),
        "amount": table.column("Amount", required=False, key="value"),
        "created": table.column("Create Date", "Created Date", key="created"),
        "close": table.column("Close Date", required=False, key="closed"),
        "reason": table.column("Closed Lost Reason", required=False, key="lost_reason"),
    }
    suffix = f' ({pipeline})"'
    entered = table.columns_like('Date entered "', suffix)
    exited = table.columns_like('Date exited "', suffix)
    problems: list[Problem] = []
    deals = []
    ours = [row for row in table.rows if row.get(col["pipeline"]) == pipeline]
    duplicated = _duplicates(table, col["id"], ours, "Record ID", problems)
    for row in table.rows:
        if row.get(col["pipeline"]) != pipeline and (row.problem is None or row.get(col["pipeline"])):
            continue  # another pipeline's deal (a row cut before its Pipeline cell is reported)
        if row.get(col["id"]) in duplicated:
            continue
        check = _RowProblems(row, problems)
        created = check.instant(row.get(col["created"]), "Create Date", zone)
        amount = check.amount(row.get(col["amount"]), "Amount")
        close = check.instant(row.get(col["close"]), "Close Date", zone, required=False)
        history = []
        for stage, column in entered.items():
            at = check.instant(row.get(column), f'Date entered "{stage}"', zone, required=False)
            if at is None:
                continue
            left = check.instant(row.get(exited.get(stage)), f'Date exited "{stage}"', zone, required=False)
            history.append(StageChange(stage=stage, entered_at=at, exited_at=left, origin=row.origin))
        if not row.get(col["id"]):
            check.add("no Record ID")
        if check.count or created is None:
            continue
        history.sort(key=lambda h: h.entered_at)
        deals.append(
            _deal(
                "hubspot",
                table,
                row,
                col,
                value=amount,
                created_at=created,
                status=None,
                closed_at=_to_the_minute(close, row.get(col["close"]), history),
                current_stage=row.get(col["stage"]),
                history=history,
            )
        )
    if not deals and not problems and table.rows:
        pipelines = sorted({r.get(col["pipeline"]) for r in table.rows})
        problems.append(
            Problem(where=table.path, message=f"no deal of pipeline {pipeline!r} (it has: {', '.join(pipelines)})")
        )
    return _finish(deals, problems, table)


def pipedrive(deals_csv: str, zone: ZoneInfo, options: ReadOptions = DEFAULT) -> Parsed:
    table = read(deals_csv, options)

    def c(name: str, required: bool = True, key: str | None = None) -> str | None:
        return table.column(f"Deal - {name}", name, required=required, key=key)

    col = {
        "id": c("ID", key="id"),
        "name": c("Title", required=False, key="name"),
        "stage": c("Stage", key="stage"),
        "status": c("Status"),
        "created": c("Deal created", key="created"),
        "won": c("Won time", required=False),
        "lost": c("Lost time", required=False),
        "reason": c("Lost reason", required=False, key="lost_reason"),
        "owner": c("Owner", key="owner"),
        "value": c("Value", required=False, key="value"),
        "changed": c("Last stage change", required=False),
    }
    problems: list[Problem] = []
    deals = []
    duplicated = _duplicates(table, col["id"], table.rows, "ID", problems)
    for row in table.rows:
        if row.get(col["id"]) in duplicated:
            continue
        check = _RowProblems(row, problems)
        created = check.instant(row.get(col["created"]), "Deal created", zone)
        amount = check.amount(row.get(col["value"]), "Value")
        status = row.get(col["status"]).lower()
        if status not in ("open", "won", "lost"):
            check.add(f"Status {row.get(col['status'])!r}: expected open, won or lost")
        closed_at = None
        if status in ("won", "lost"):
            closed_at = check.instant(row.get(col[status]), f"{status.title()} time", zone)
        changed = check.instant(row.get(col["changed"]), "Last stage change", zone, required=False)
        if not row.get(col["id"]):
            check.add("no ID")
        if check.count or created is None:
            continue
        stage = row.get(col["stage"])
        history = [StageChange(stage=stage, entered_at=changed or created, origin=row.origin)] if stage else []
        deals.append(
            _deal(
                "pipedrive",
                table,
                row,
                col,
                value=amount,
                created_at=created,
                status=status,
                closed_at=closed_at,
                current_stage=stage,
                history=history,
            )
        )
    return _finish(deals, problems, table)


GENERIC_COLUMNS = {"deal_id", "stage", "entered_at", "owner", "value", "name", "lost_reason"}


_GENERIC_KEYS = {"deal_id": "id", "entered_at": "created", "lost_reason": "lost_reason"}


def generic(stage_changes: str, zone: ZoneInfo, options: ReadOptions = DEFAULT) -> Parsed:
    """One row per stage change, in order per deal: deal_id, stage, entered_at, owner, value, and
    optionally name and lost_reason; every other column is a fact recorded at that stage. A row
    whose stage is `won` or `lost` closes the deal."""
    table = read(stage_changes, options)
    col = {
        name: table.column(name, required=name in {"deal_id", "stage", "entered_at"}, key=_GENERIC_KEYS.get(name, name))
        for name in GENERIC_COLUMNS
    }
    mapped = set(col.values()) | set(_fact_columns(table).values())
    fact_columns = [h for h in table.header if h not in mapped and h.strip().lower() not in GENERIC_COLUMNS]
    problems: list[Problem] = []
    by_deal: dict[str, list[Row]] = defaultdict(list)
    for row in table.rows:
        if not row.get(col["deal_id"]):
            _RowProblems(row, problems).add("no deal_id")
            continue
        by_deal[row.get(col["deal_id"])].append(row)
    deals = []
    for crm_id, rows in by_deal.items():
        history: list[StageChange] = []
        facts: dict[str, str] = {}
        stage_facts: dict[str, str] = {}
        bad = False
        owner = value = None
        closed_at, status, reason = None, None, None
        for row in rows:
            check = _RowProblems(row, problems)
            at = check.instant(row.get(col["entered_at"]), "entered_at", zone)
            amount = check.amount(row.get(col["value"]), "value")
            stage = row.get(col["stage"])
            if not stage:
                check.add("no stage")
            if check.count or at is None:
                bad = True
                continue
            if history and at < history[-1].entered_at:
                problems.append(
                    Problem(
                        where=str(row.origin),
                        message=f"deal {crm_id}: {stage!r} at {at.isoformat()} comes after "
                        f"{history[-1].stage!r} at {history[-1].entered_at.isoformat()} "
                        f"({history[-1].origin}): the history runs backwards",
                    )
                )
                bad = True
                continue
            owner = row.get(col["owner"]) or owner
            value = amount if amount is not None else value
            if stage.lower() in ("won", "lost"):
                status, closed_at, reason = stage.lower(), at, row.get(col["lost_reason"]) or None
                continue
            history.append(StageChange(stage=stage, entered_at=at, origin=row.origin))
            facts.update({f"{stage}.{h.strip()}": row.get(h) for h in fact_columns if row.get(h)})
            stage_facts.update({k: row.get(c) for k, c in _fact_columns(table).items() if row.get(c)})
        if bad or not history:
            if not bad:
                problems.append(
                    Problem(where=str(rows[0].origin), message=f"deal {crm_id}: no stage before its outcome")
                )
            continue
        deals.append(
            CrmDeal(
                source="csv",
                crm_id=crm_id,
                name=rows[0].get(col["name"]) or None,
                owner=owner,
                value=value,
                created_at=history[0].entered_at,
                status=status or "open",
                closed_at=closed_at,
                lost_reason=reason,
                current_stage=history[-1].stage,
                history=history,
                facts=facts,
                stage_facts=stage_facts,
                origin=rows[0].origin,
            )
        )
    return _finish(deals, problems, table)


READERS: dict[str, Callable[..., Parsed]] = {
    "salesforce": salesforce,
    "hubspot": hubspot,
    "pipedrive": pipedrive,
    "csv": generic,
}
