"""What every page shares: the templates, the signed-in caller, and the filters pages format with.

Templates are Jinja2 with autoescaping on, so a deal field or a fact holding HTML is shown as
text wherever it appears.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from app import permissions
from app.permissions import Permission
from client.api import Unauthenticated
from web.identity import Caller, csrf_token, identify

TEMPLATES = Jinja2Templates(directory=Path(__file__).parent / "templates")


class SignInRequired(Exception):
    """A page was asked for without an identity: the browser is sent to the sign-in page, with
    the code of the reason (the sign-in page words it; web/page_auth.py)."""

    def __init__(self, next_path: str, reason: str):
        super().__init__(reason)
        self.next_path, self.reason = next_path, reason


def reason_of(exc: Unauthenticated) -> str:
    """The code of why no one is signed in: a `reason` in the refusal's details, else "signin"."""
    found = exc.details.get("reason") if isinstance(exc.details, dict) else None
    return str(found) if found else "signin"


async def page_caller(request: Request) -> Caller:
    try:
        return await identify(request)
    except Unauthenticated as exc:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise SignInRequired(target, reason_of(exc)) from None


def may(caller: Caller, permission: Permission) -> bool:
    """Whether the caller's role allows `permission` (the page offers only that); everyone may with access off."""
    return permissions.allowed(caller.role, permission)


def render(request: Request, template: str, caller: Caller | None, status: int = 200, **context: Any) -> HTMLResponse:
    return TEMPLATES.TemplateResponse(
        request,
        template,
        {
            "caller": caller,
            "csrf": csrf_token(request),
            "may": (lambda p: caller is not None and may(caller, p)),
            **context,
        },
        status_code=status,
    )


def since_text(at: datetime | None, now: datetime | None = None) -> str:
    """How long ago, in the largest unit that fits: 3 d, 5 h, 12 min, just now."""
    if at is None:
        return "-"
    seconds = ((now or datetime.now(UTC)) - at).total_seconds()
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{int(seconds // size)} {unit}"
    return "just now"


_COMMON = {"seq", "at", "actor", "stage", "request_id", "type", "schema_version"}


def changes(event: Any) -> str:
    """An event's own fields, beyond who, when and where, as `name: value` text."""
    data = {k: v for k, v in event.model_dump(mode="json").items() if k not in _COMMON and v not in (None, [], {})}
    return "; ".join(f"{k}: {v}" for k, v in data.items())


def fact(value: Any) -> str:
    """A fact as a rep wrote it: yes and no, not Python's True and False."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def money(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def when(value: datetime | None) -> str:
    return "-" if value is None else value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


TEMPLATES.env.filters.update(
    since=since_text,
    money=money,
    when=when,
    pct=pct,
    urlpart=lambda s: quote(str(s), safe=""),
    changes=changes,
    fact=fact,
)
