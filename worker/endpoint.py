"""The worker's HTTP endpoint, on `DEALFLOW_METRICS_ADDRESS`: `/metrics`, `/livez`, `/readyz`.

`/metrics` is dealflow's registry (worker.telemetry) followed by the Temporal SDK's exporter's
page, fetched from its loopback port at each scrape: one target for Prometheus, both in the
text format 0.0.4. aiohttp serves it on the worker's own event loop, so `/livez` stops
answering when that loop is stuck.
"""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp
from aiohttp import web
from prometheus_client import CONTENT_TYPE_PLAIN_0_0_4, generate_latest

from store.embedded import free_port
from worker.devserver import port_open
from worker.health import Readiness
from worker.settings import DEV_METRICS_ADDRESS, METRICS_ENV_VAR, SettingsError, metrics_address
from worker.telemetry import Telemetry

log = logging.getLogger("dealflow.endpoint")

SDK_TIMEOUT = aiohttp.ClientTimeout(total=2)
_SESSION = web.AppKey("sdk_session", aiohttp.ClientSession)


class EndpointError(SettingsError):
    """The endpoint cannot listen where it was told to."""


def dev_endpoint() -> tuple[str, int] | None:
    """Where `dealflow dev` serves: `DEALFLOW_METRICS_ADDRESS`, else 127.0.0.1:9464, else (that
    port being taken, by another stack say) a free port."""
    address = metrics_address(DEV_METRICS_ADDRESS)
    if address is not None and not os.environ.get(METRICS_ENV_VAR) and port_open(*address):
        return address[0], free_port()
    return address


def url(address: tuple[str, int]) -> str:
    """The base URL to reach an endpoint listening on `address` from this machine."""
    host, port = address
    shown = {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "[::1]"}.get(host) or (f"[{host}]" if ":" in host else host)
    return f"http://{shown}:{port}"


def make_app(telemetry: Telemetry, readiness: Readiness) -> web.Application:
    async def metrics(request: web.Request) -> web.Response:
        await telemetry.metrics.store.refresh()
        body = generate_latest(telemetry.metrics.registry)
        try:
            async with request.app[_SESSION].get(telemetry.sdk_metrics_url) as sdk:
                sdk.raise_for_status()
                body += await sdk.read()
        except (aiohttp.ClientError, TimeoutError) as exc:
            log.warning("metrics: the Temporal SDK's exporter did not answer: %s", exc)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_PLAIN_0_0_4})

    async def livez(request: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def readyz(request: web.Request) -> web.Response:
        checks = await readiness.checks()
        ready = all(c.ok for c in checks)
        text = "".join(f"{c.line()}\n" for c in checks)
        return web.Response(status=200 if ready else 503, text=text)

    async def sdk_session(app: web.Application) -> AsyncIterator[None]:
        async with aiohttp.ClientSession(timeout=SDK_TIMEOUT) as session:
            app[_SESSION] = session
            yield

    app = web.Application()
    app.cleanup_ctx.append(sdk_session)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/livez", livez)
    app.router.add_get("/readyz", readyz)
    return app


@asynccontextmanager
async def serving(address: tuple[str, int], app: web.Application) -> AsyncIterator[str]:
    """Serve `app` on `address` (port 0: a free one); yields its base URL."""
    host, port = address
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        try:
            await web.TCPSite(runner, host, port).start()
        except OSError as exc:
            raise EndpointError(
                f"{METRICS_ENV_VAR}={host}:{port}: cannot listen there: {exc.strerror or exc}"
                " (give another port, port 0 for any free one, or off)"
            ) from None
        base = url((host, runner.addresses[0][1]))
        log.info("metrics on %s/metrics, health on /livez and /readyz", base)
        yield base
    finally:
        await runner.cleanup()
