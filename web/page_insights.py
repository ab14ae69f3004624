"""The pages that read and change nothing: the managers' dashboard and the auditors' deal audit.

Both take their inputs from the query string, so a view can be bookmarked or sent to a colleague.
Dates and times a person types carry no zone; they are read as UTC (or in the zone the audit form
names), and the page says so, because a funnel cut at the wrong midnight is a wrong funnel.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, time
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from app import audit_service, dashboard_service
from app.metrics_service import MetricsQuery
from app.readable import duration_text
from client.api import DealflowError, NotFound, Refused
from web.errors import status_of
from web.identity import client_of
from web.page_ops import refusal
from web.views import page_caller, render

router = APIRouter(include_in_schema=False)

UTC_ZONE = ZoneInfo("UTC")


def _blank(value: str | None) -> str | None:
    return value.strip() or None if value else None


def _day(value: str | None, name: str) -> datetime | None:
    """A date input's value as midnight UTC."""
    if not _blank(value):
        return None
    try:
        return datetime.combine(date.fromisoformat(str(value).strip()), time(), UTC)
    except ValueError:
        raise Refused(f"{name}: expected a date such as 2026-03-01, got {value!r}", code="invalid_request") from None


def _instant(value: str | None, name: str, zone: ZoneInfo = UTC_ZONE) -> datetime | None:
    """A datetime-local input's value in `zone` (one typed with an offset keeps its own)."""
    if not _blank(value):
        return None
    try:
        found = datetime.fromisoformat(str(value).strip())
    except ValueError:
        raise Refused(
            f"{name}: expected a date and time such as 2026-03-01T12:00, got {value!r}", code="invalid_request"
        ) from None
    return found if found.tzinfo else found.replace(tzinfo=zone)


def _versions_by_process(deployments: list[Any]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for d in deployments:
        out.setdefault(d.name, []).insert(0, d.version)
    return out


@router.get("/dashboard", response_class=HTMLResponse)
async def dashboard_page(request: Request) -> HTMLResponse:
    caller = await page_caller(request)
    c = client_of(request)
    names = ("process", "version", "owner", "since", "until", "as_of", "a", "b")
    typed = {k: (request.query_params.get(k) or "").strip() for k in names}
    versions = _versions_by_process(await c.definitions())
    context: dict[str, Any] = {"typed": typed, "versions": versions, "duration": duration_text}
    try:
        query = MetricsQuery(
            process=typed["process"] or None,
            version=typed["version"] or None,
            owner=typed["owner"] or None,
            since=_day(typed["since"], "since"),
            until=_day(typed["until"], "until"),
            as_of=_instant(typed["as_of"], "as of"),
        )
        compare = (typed["a"], typed["b"]) if typed["a"] and typed["b"] else None
        if bool(typed["a"]) != bool(typed["b"]):
            raise Refused("pick both versions to compare", code="invalid_request")
        board = await dashboard_service.dashboard(c, query, compare)
    except (Refused, NotFound) as exc:
        return render(request, "dashboard.html", caller, status_of(exc), board=None, **context, **refusal(exc))
    return render(request, "dashboard.html", caller, board=board, **context)


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: a directory of zones, on some systems
        raise Refused(
            f"time zone: {name!r} is not a zone name; write one such as UTC, Europe/Berlin or America/New_York",
            code="invalid_request",
        ) from None


LONG_DETAIL = 160  # characters: a longer value (a whole definition, in a migration) is folded away


def detail(details: dict[str, Any]) -> list[tuple[str, str, bool]]:
    """A timeline entry's details as (name, JSON text, long?), leaving out what says nothing (empty
    values, the schema version), so that the row shows what was asked or recorded."""
    out = []
    for name, value in details.items():
        if value in (None, "", [], {}) or name == "schema_version":
            continue
        text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, sort_keys=True)
        if len(text) > LONG_DETAIL:
            text = json.dumps(value, ensure_ascii=False, sort_keys=True, indent=1)
        out.append((name, text, len(text) > LONG_DETAIL))
    return out


@router.get("/audit", response_class=HTMLResponse)
async def audit_page(request: Request) -> HTMLResponse:
    caller = await page_caller(request)
    deal_id = (request.query_params.get("deal") or "").strip()
    at, tz = (request.query_params.get("at") or "").strip(), (request.query_params.get("tz") or "").strip()
    context: dict[str, Any] = {"deal_id": deal_id, "typed": {"at": at, "tz": tz}, "detail": detail}
    if not deal_id:
        return render(request, "audit.html", caller, **context)
    c = client_of(request)
    try:
        context["timeline"] = await audit_service.deal_timeline(c, deal_id)
        context["verdict"] = await audit_service.verify_running(c, deal_id)
    except (Refused, NotFound) as exc:
        return render(request, "audit.html", caller, status_of(exc), **context, **refusal(exc))
    status = 200
    if at:
        try:
            zone = _zone(tz)
            instant = _instant(at, "as of", zone)
            assert instant is not None
            if instant.tzinfo is not zone:
                read = f"read with the offset typed ({instant.isoformat()})"
            elif tz:
                read = f"read in {zone.key}"
            else:
                read = "read as UTC: no time zone was given"
            context["as_of"] = {"at": instant, "read": read}
            context["state"] = await audit_service.state_as_of(c, deal_id, instant)
        except DealflowError as exc:  # a time that does not read, or before the deal started
            status = status_of(exc)
            context.update(refusal(exc))
    return render(request, "audit.html", caller, status, **context)
