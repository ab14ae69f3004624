"""`dealflow serve`: the web app on uvicorn, in the caller's event loop, until told to stop."""

from __future__ import annotations

import asyncio
import ipaddress
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace

import uvicorn

from client.api import DealflowClient
from web.app import create_app
from web.hygiene import LOOPBACK
from web.settings import WebSettings
from worker.settings import REQUEST_DEADLINE_ENV_VAR, Settings, SettingsError

# how long the web app lets one write take, every attempt included, unless
# DEALFLOW_REQUEST_DEADLINE_SECONDS says otherwise: past it the caller gets 503 with Retry-After
# (repeat under the same Idempotency-Key) instead of waiting on a worker or a Temporal that is gone
WEB_REQUEST_DEADLINE_SECONDS = 10.0


def web_client_settings(settings: Settings | None = None) -> Settings:
    """The client settings the web app runs with: the CLI's, with the web's shorter deadline."""
    settings = settings or Settings.resolve()
    if REQUEST_DEADLINE_ENV_VAR in os.environ:
        return settings
    return replace(settings, request_deadline_seconds=WEB_REQUEST_DEADLINE_SECONDS)


def listen_host(settings: WebSettings, access_on: bool) -> str:
    """Where to listen. With access control off anyone who reaches the server acts as anyone, so
    it listens on loopback only and refuses to be told otherwise."""
    host = settings.host or LOOPBACK
    if not access_on and not _loopback(host):
        raise SettingsError(
            f"access control is off, so the web app listens on {LOOPBACK} only, not {host}: configure identities "
            "(DEALFLOW_IDENTITIES or an access file, see docs/web.md) to serve other machines"
        )
    return host


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class _Server(uvicorn.Server):
    """Uvicorn without its signal handlers: the command that runs it owns Ctrl-C and SIGTERM, and
    stops the worker, the web app and the servers together."""

    @contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def base_url(host: str, port: int) -> str:
    shown = LOOPBACK if host in ("0.0.0.0", "") else (f"[{host}]" if ":" in host else host)
    return f"http://{shown}:{port}"


async def serve(settings: WebSettings, stop: asyncio.Event, *, client: DealflowClient | None = None) -> None:
    """Serve until `stop` is set; prints the address once listening."""
    own = client is None
    client = client or await DealflowClient.connect(web_client_settings())
    try:
        access_on = client.access is not None
        host = listen_host(settings, access_on)
        app = create_app(settings, client)
        config = uvicorn.Config(app, host=host, port=settings.port, log_level="warning", lifespan="on")
        server = _Server(config)
        task = asyncio.create_task(server.serve())
        while not server.started:
            if task.done():
                await task  # it failed to start: its error says why
                raise SettingsError(f"the web app could not listen on {host}:{settings.port}")
            await asyncio.sleep(0.05)
        port = server.servers[0].sockets[0].getsockname()[1] if server.servers else settings.port
        note = (
            f"access control on ({client.access.source})"
            if client.access is not None
            else f"access control off: listening on {host} only, and anyone here acts under the name they give"
        )
        print(f"Web app:    {base_url(host, port)}  ({note})", flush=True)
        print(f"API:        {base_url(host, port)}/api/v1 (docs {base_url(host, port)}/api/docs)", flush=True)
        await stop.wait()
        server.should_exit = True
        await task
    finally:
        if own:
            await client.close()
