"""The four export shapes read into `CrmDeal`s: Salesforce, HubSpot, Pipedrive, and a generic CSV.

Each reader reports a row it cannot take as a `Problem` with its file and line, and goes on: one
bad row never hides the others, and the import takes no deal that has a problem.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from crm.dates import BadInstant, parse_amount, parse_instant
from crm.model import CrmDeal, Origin, Parsed, Problem, Source, StageChange
from crm.table import Row, Table, read

TRUE = {"true", "1", "yes"}


class _RowProblems:
    """Collects a row's problems so that each bad cell is named, not just the first."""

    def __init__(self, origin: Origin, problems: list[Problem]):
        self.origin, self.problems, self.count = origin, problems, 0

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
        self.problems.append(Problem(where=str(self.origin), message=message))


def _deal(source: Source, row: Row, col: dict[str, str | None], **fields: Any) -> CrmDeal:
    """A deal from its export row: the columns every source has (id, name, owner, lost reason)
    read the same way, the rest as given."""
    return CrmDeal(
        source=source,
        crm_id=row.get(col["id"]),
        name=row.get(col["name"]) or None,
        owner=row.get(col["owner"]) or None,
        lost_reason=row.get(col["reason"]) or None,
        origin=row.origin,
        **fields,
    )


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


def _finish(deals: list[CrmDeal], problems: list[Problem], *tables: Table) -> Parsed:
    kept = [d for d in deals if _check_order(d, problems)]
    files = [{"file": Path(t.path).name, "sha256": t.sha256} for t in tables]
    return Parsed(deals=kept, problems=problems, rows=sum(len(t.rows) for t in tables), files=files)


def salesforce(opportunities: str, history_csv: str, zone: ZoneInfo) -> Parsed:
    opp, hist = read(opportunities), read(history_csv)
    col = {
        "id": opp.column("Id", "Opportunity ID"),
        "name": opp.column("Name", "Opportunity Name", required=False),
        "stage": opp.column("StageName", "Stage"),
        "amount": opp.column("Amount", required=False),
        "owner": opp.column("Owner Name", "Owner", "OwnerId", "Opportunity Owner"),
        "created": opp.column("CreatedDate", "Created Date"),
        "close": opp.column("CloseDate", "Close Date", required=False),
        "closed": opp.column("IsClosed", "Closed"),
        "won": opp.column("IsWon", "Won"),
        "reason": opp.column("Loss_Reason__c", "Loss Reason", "LossReason", required=False),
    }
    hcol = {
        "id": hist.column("OpportunityId", "Opportunity ID"),
        "stage": hist.column("StageName", "Stage"),
        "created": hist.column("CreatedDate", "Created Date", "Last Modified"),
    }
    problems: list[Problem] = []
    changes: dict[str, list[tuple[datetime, Row]]] = defaultdict(list)
    for row in hist.rows:
        check = _RowProblems(row.origin, problems)
        at = check.instant(row.get(hcol["created"]), "CreatedDate", zone)
        if not row.get(hcol["id"]):
            check.add("no OpportunityId")
        if not row.get(hcol["stage"]):
            check.add("no StageName")
        if at is not None and not check.count:
            changes[row.get(hcol["id"])].append((at, row))
    deals = []
    for row in opp.rows:
        check = _RowProblems(row.origin, problems)
        crm_id = row.get(col["id"])
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


def hubspot(deals_csv: str, pipeline: str, zone: ZoneInfo) -> Parsed:
    table = read(deals_csv)
    col = {
        "id": table.column("Record ID", "Deal ID", "Hs Object Id"),
        "name": table.column("Deal Name", required=False),
        "stage": table.column("Deal Stage"),
        "pipeline": table.column("Pipeline"),
        "owner": table.column("Deal owner", "Deal Owner", "Owner"),
        "amount": table.column("Amount", required=False),
        "created": table.column("Create Date", "Created Date"),
        "close": table.column("Close Date", required=False),
        "reason": table.column("Closed Lost Reason", required=False),
    }
    suffix = f' ({pipeline})"'
    entered = table.columns_like('Date entered "', suffix)
    exited = table.columns_like('Date exited "', suffix)
    problems: list[Problem] = []
    deals = []
    for row in table.rows:
        if row.get(col["pipeline"]) != pipeline:
            continue
        check = _RowProblems(row.origin, problems)
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
                row,
                col,
                value=amount,
                created_at=created,
                status=None,
                closed_at=close,
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


def pipedrive(deals_csv: str, zone: ZoneInfo) -> Parsed:
    table = read(deals_csv)

    def c(name: str, required: bool = True) -> str | None:
        return table.column(f"Deal - {name}", name, required=required)

    col = {
        "id": c("ID"),
        "name": c("Title", required=False),
        "stage": c("Stage"),
        "status": c("Status"),
        "created": c("Deal created"),
        "won": c("Won time", required=False),
        "lost": c("Lost time", required=False),
        "reason": c("Lost reason", required=False),
        "owner": c("Owner"),
        "value": c("Value", required=False),
        "changed": c("Last stage change", required=False),
    }
    problems: list[Problem] = []
    deals = []
    for row in table.rows:
        check = _RowProblems(row.origin, problems)
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


def generic(stage_changes: str, zone: ZoneInfo) -> Parsed:
    """One row per stage change, in order per deal: deal_id, stage, entered_at, owner, value, and
    optionally name and lost_reason; every other column is a fact recorded at that stage. A row
    whose stage is `won` or `lost` closes the deal."""
    table = read(stage_changes)
    col = {name: table.column(name, required=name in {"deal_id", "stage", "entered_at"}) for name in GENERIC_COLUMNS}
    fact_columns = [h for h in table.header if h.strip().lower() not in GENERIC_COLUMNS]
    problems: list[Problem] = []
    by_deal: dict[str, list[Row]] = defaultdict(list)
    for row in table.rows:
        if not row.get(col["deal_id"]):
            problems.append(Problem(where=str(row.origin), message="no deal_id"))
            continue
        by_deal[row.get(col["deal_id"])].append(row)
    deals = []
    for crm_id, rows in by_deal.items():
        history: list[StageChange] = []
        facts: dict[str, str] = {}
        bad = False
        owner = value = None
        closed_at, status, reason = None, None, None
        for row in rows:
            check = _RowProblems(row.origin, problems)
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
