"""What every request passes before any work: a Host the server answers to, and a body no larger
than its route allows.

A wrong Host is how a page elsewhere drives a server on a developer's machine (DNS rebinding:
`attacker.example` made to resolve to 127.0.0.1), so with access control off only loopback names
and the bound address are answered. A body's size is checked against its Content-Length before
the app sees the request, and a body sent without one (chunked) is counted as it arrives and
refused the moment it passes the limit; handlers read their body before they act.

Starlette's own `max_body_size` is not used: it answers a declared oversize body in plain text
rather than the API's error shape, and only once the app starts reading it.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Callable

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

LOOPBACK = "127.0.0.1"
LOOPBACK_NAMES = frozenset({"localhost"})


class BodyTooLarge(HTTPException):
    """Raised from a counted body's `receive`; the app's error handlers answer it (413)."""

    def __init__(self, limit: int):
        super().__init__(413, f"the request body is larger than this route takes ({limit:,} bytes)")


def host_name(header: str) -> str:
    """The name of a Host header, without its port: `[::1]:8000` -> `::1`."""
    value = header.strip().lower()
    if value.startswith("["):
        return value[1:].partition("]")[0]
    if value.count(":") == 1:
        value = value.partition(":")[0]
    return value.rstrip(".")


def is_loopback(name: str) -> bool:
    if name in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def answers_to(name: str, *, access_on: bool, bound: str, allowed: tuple[str, ...]) -> bool:
    """Whether a request for Host `name` is served. Access control off: loopback names and the
    bound address only. On: those and `allowed`, or any name when `allowed` is empty."""
    if is_loopback(name) or name == bound.lower():
        return True
    if not access_on:
        return False
    return not allowed or name in allowed


async def refuse(scope: Scope, send: Send, status: int, code: str, message: str) -> None:
    """An answer sent before the app: JSON in the API's error shape under /api/, text elsewhere."""
    if str(scope.get("path", "")).startswith("/api/"):
        body, kind = json.dumps({"code": code, "message": message, "details": None}).encode(), b"application/json"
    else:
        body, kind = f"{message}\n".encode(), b"text/plain; charset=utf-8"
    headers = [(b"content-type", kind), (b"content-length", str(len(body)).encode()), (b"connection", b"close")]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class HostCheck:
    def __init__(self, app: ASGIApp, *, access_on: Callable[[], bool], bound: str, allowed: tuple[str, ...]):
        self.app, self.access_on, self.bound, self.allowed = app, access_on, bound, allowed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            host = Headers(scope=scope).get("host")
            name = host_name(host) if host else ""
            if not answers_to(name, access_on=self.access_on(), bound=self.bound, allowed=self.allowed):
                shown = f"Host {host!r}" if host else "a request without a Host header"
                await refuse(
                    scope,
                    send,
                    400,
                    "invalid_host",
                    f"this server does not answer {shown}: use http://127.0.0.1 or a name in DEALFLOW_ALLOWED_HOSTS "
                    "(only loopback names with access control off)",
                )
                return
        await self.app(scope, receive, send)


class BodyLimit:
    def __init__(self, app: ASGIApp, *, limit_of: Callable[[str], int]):
        self.app, self.limit_of = app, limit_of

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_of(scope["path"])
        declared = Headers(scope=scope).get("content-length")
        if declared is not None and declared.strip().isdigit() and int(declared) > limit:
            await refuse(scope, send, 413, "body_too_large", BodyTooLarge(limit).detail)
            return
        seen = 0
        started = False

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise BodyTooLarge(limit)
            return message

        async def tracked(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, tracked)
        except BodyTooLarge as exc:
            if started:
                raise
            await refuse(scope, send, 413, "body_too_large", exc.detail)
