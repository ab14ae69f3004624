"""The headers every answer carries (pages, API, static files, errors): a Content-Security-Policy
that runs only this server's own script files and lets no page frame ours, no MIME sniffing, and
no Referer sent elsewhere.

A route with an inline script of its own (Swagger UI's start-up call) names it by its hash
(`allow_inline_scripts`), never by 'unsafe-inline'.
"""

from __future__ import annotations

import base64
import hashlib
import re

from starlette.datastructures import MutableHeaders
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

CSP = "Content-Security-Policy"


def policy(script_src: str = "'self'") -> str:
    return "; ".join(
        [
            "default-src 'self'",
            f"script-src {script_src}",
            "style-src 'self'",
            "img-src 'self' data:",
            "font-src 'self'",
            "connect-src 'self'",
            "object-src 'none'",
            "base-uri 'none'",
            "form-action 'self'",
            "frame-ancestors 'none'",
        ]
    )


EVERY_ANSWER = {
    CSP: policy(),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}

_INLINE_SCRIPT = re.compile(rb"<script>(.*?)</script>", re.DOTALL)


def allow_inline_scripts(response: Response) -> Response:
    """Give `response` a policy that runs its own inline scripts, each named by its SHA-256."""
    hashes = [
        "'sha256-" + base64.b64encode(hashlib.sha256(script).digest()).decode() + "'"
        for script in _INLINE_SCRIPT.findall(bytes(response.body))
    ]
    response.headers[CSP] = policy(" ".join(["'self'", *hashes]))
    return response


class SecurityHeaders:
    """Adds EVERY_ANSWER's headers to each answer that does not set its own."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in EVERY_ANSWER.items():
                    if name not in headers:
                        headers[name] = value
            await send(message)

        await self.app(scope, receive, with_headers)
