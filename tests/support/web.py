"""Helpers for the web app's tests: an app over the test servers, an HTTP client to it, and
access policies to run it under."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import replace
from datetime import datetime
from typing import Any

import httpx
from fastapi import FastAPI
from fastapi.routing import APIRoute

from app.access import AccessPolicy, Identity, PolicySource
from client.api import DealflowClient
from web.app import create_app
from web.serve import _Server
from web.settings import WebSettings

IDENTITIES = {
    "rita": Identity(role="rep", team="east"),
    "bob": Identity(role="rep", team="east"),
    "mona": Identity(role="manager", team="east"),
    "olga": Identity(role="ops"),
    "ada": Identity(role="auditor"),
}


def policy() -> AccessPolicy:
    return AccessPolicy(dict(IDENTITIES), "tests")


def settings(**changes: object) -> WebSettings:
    base = {
        "host": None,
        "port": 0,
        "secret_key": "test-secret-key",
        "sso_header": None,
        "sso_proxies": (),
        "secure_cookies": False,
    }
    return WebSettings(**(base | changes))  # type: ignore[arg-type]


def app_over(
    client: DealflowClient,
    access: AccessPolicy | PolicySource | None = None,
    *,
    flush: float | None = None,
    clock: Callable[[], datetime] | None = None,
    **changes: object,
) -> FastAPI:
    """The web app over the test servers, with its own client (same connections) and `access`;
    deals it starts append to the log every `flush` seconds (None: the default window); its
    sessions and sign-in throttle read the time from `clock` (None: the real one)."""
    deal_settings = client.settings if flush is None else replace(client.settings, log_flush_seconds=flush)
    own = DealflowClient(client.temporal, client.pool, deal_settings, access)
    if clock is None:
        return create_app(settings(**changes), own)
    return create_app(settings(**changes), own, clock=clock)


def unserved_app() -> FastAPI:
    """The app with no client: enough for its OpenAPI document and its routes."""
    return create_app(settings())


def api_routes(routes: list[Any]) -> list[APIRoute]:
    """An app's API routes, through the routers it includes."""
    found: list[APIRoute] = []
    for route in routes:
        if isinstance(route, APIRoute):
            found.append(route)
        elif (included := getattr(route, "original_router", None)) is not None:
            found += api_routes(included.routes)
    return found


def http(app: FastAPI, token: str | None = None, **headers: str) -> httpx.AsyncClient:
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1", headers=headers)


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, "the page has a form with a CSRF token"
    return found.group(1)


@asynccontextmanager
async def served(app: FastAPI) -> AsyncIterator[str]:
    """The app on a real socket on 127.0.0.1 (for the browser), in this event loop; its base URL."""
    import uvicorn

    server = _Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off"))
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            await task
        await asyncio.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


async def redirected(api: httpx.AsyncClient, answer: httpx.Response, location: str) -> httpx.Response:
    """The page a form's answer redirects to (post/redirect/get), asked for as a browser would."""
    assert (answer.status_code, answer.headers.get("location")) == (303, location), answer.text[:2000]
    return await api.get(location)
