"""/livez and /readyz of the web app, for a load balancer or an orchestrator.

/livez answers while the process does; /readyz only while the server can do its work: PostgreSQL
answers, Temporal answers and serves workflows, and no deal's appends to the event log have been
failing for long (the worker's /readyz runs the same checks). Both are plain text, one line a
check, and need no sign-in: they tell nothing about any deal.
"""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse

from web.identity import client_of
from worker import health

router = APIRouter(include_in_schema=False)


@router.get("/livez")
async def livez() -> PlainTextResponse:
    return PlainTextResponse("ok\n")


@router.get("/readyz")
async def readyz(request: Request) -> PlainTextResponse:
    c = client_of(request)
    checks = await asyncio.gather(health.postgresql(c.pool), health.temporal(c.temporal), health.log_appends(c.pool))
    text = "".join(f"{check.line()}\n" for check in checks)
    return PlainTextResponse(text, status_code=200 if all(check.ok for check in checks) else 503)
