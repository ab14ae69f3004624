"""The web app: the HTTP API under /api/v1 and the pages, on one FastAPI application.

Both sit on the Python client (`client.api` and the `client.*_service` modules), the same
application layer the CLI calls; nothing here decides what a deal may do. Reads come from
PostgreSQL, never from a query to a running deal.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path

import fastapi_offline
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel
from starlette.middleware.sessions import SessionMiddleware
from starlette.types import ASGIApp

from client.api import DealflowClient, DealflowError
from web import api_analysis, api_deals, api_definitions, api_imports, api_insights, health, pages
from web.errors import on_dealflow_error, on_validation_error
from web.headers import SecurityHeaders, allow_inline_scripts
from web.hygiene import LOOPBACK, BodyLimit, HostCheck
from web.identity import Caller, api_caller
from web.settings import WebSettings
from web.throttle import SignInThrottle

STATIC = Path(__file__).parent / "static"
SWAGGER_STATIC = Path(fastapi_offline.__file__).parent / "static"
SESSION_COOKIE = "dealflow_session"
# the routes that take files (definitions with their templates, CRM exports): they may take a body
# up to WebSettings.max_upload_bytes; every other route max_body_bytes
UPLOAD_PATHS = frozenset(
    {
        "/api/v1/definitions",
        "/api/v1/definitions/validate",
        "/api/v1/imports",
        "/definitions/preview",
        "/definitions/deploy",
        "/imports",
    }
)


class Identity(BaseModel):
    name: str
    role: str | None
    team: str | None
    via: str
    access_control: bool


def operation_id(route: APIRoute) -> str:
    """A readable operation id (`deals-complete`) from the route's most specific tag (its own,
    else its router's) and its name, as FastAPI's docs suggest, so that a generated client's
    methods read as the API's words; route names keep them unique (tests/unit/test_web_contract.py)."""
    tag = str(route.tags[-1]) if route.tags else "api"
    return f"{tag}-{route.name}".replace("_", "-")


def _utc_now() -> datetime:
    return datetime.now(UTC)


class _App(FastAPI):
    """FastAPI with the request checks (web/hygiene.py) and the headers (web/headers.py) outside
    everything else, Starlette's error middleware included: a refused Host or an oversize body
    is answered before any work, and a 500 carries the headers too."""

    def build_middleware_stack(self) -> ASGIApp:
        settings: WebSettings = self.state.web_settings
        inner = BodyLimit(
            super().build_middleware_stack(),
            limit_of=lambda path: settings.max_upload_bytes if path in UPLOAD_PATHS else settings.max_body_bytes,
        )
        checked = HostCheck(
            inner,
            access_on=lambda: self.state.client.access is not None,
            bound=settings.host or LOOPBACK,
            allowed=settings.allowed_hosts,
        )
        return SecurityHeaders(checked)


def create_app(
    settings: WebSettings, client: DealflowClient | None = None, *, clock: Callable[[], datetime] = _utc_now
) -> FastAPI:
    """The application; it connects its own client at start-up unless given one. `clock` is what
    sessions and the sign-in throttle take the time from."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        own = client is None
        app.state.client = client or await DealflowClient.connect()
        try:
            yield
        finally:
            if own:
                await app.state.client.close()

    app = _App(
        title="dealflow",
        summary="Event-sourced sales processes on Temporal: the HTTP API.",
        version="1",
        openapi_url="/api/openapi.json",
        docs_url=None,
        redoc_url=None,
        lifespan=lifespan,
        # one schema per model: events serialize through a wrap serializer (which adds their
        # schema_version), whose output schema pydantic cannot infer
        separate_input_output_schemas=False,
        generate_unique_id_function=operation_id,
    )
    app.state.web_settings = settings
    app.state.clock = clock
    app.state.throttle = SignInThrottle()
    if client is not None:
        app.state.client = client
    app.add_middleware(
        SessionMiddleware,
        secret_key=settings.secret_key,
        session_cookie=SESSION_COOKIE,
        max_age=round(settings.session_hours * 3600),
        same_site="strict",
        https_only=settings.secure_cookies,
    )
    app.add_exception_handler(DealflowError, on_dealflow_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    for router in (api_deals.router, api_definitions.router, api_insights.router, api_imports.router):
        app.include_router(router, prefix="/api/v1")
    app.include_router(api_analysis.router, prefix="/api/v1")
    app.include_router(health.router)
    app.add_api_route("/api/v1/me", whoami, methods=["GET"], tags=["identity"], response_model=Identity, name="me")
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.mount("/api/docs-static", StaticFiles(directory=SWAGGER_STATIC), name="docs-static")
    app.add_api_route("/api/docs", api_docs, methods=["GET"], include_in_schema=False)
    pages.install(app)
    return app


async def whoami(request: Request) -> Identity:
    caller: Caller = await api_caller(request)
    return Identity(
        name=caller.name, role=caller.role, team=caller.team, via=caller.via, access_control=caller.role is not None
    )


async def api_docs() -> HTMLResponse:
    """Swagger UI, served from this server: no script or style comes from elsewhere, and its one
    inline script (the call that starts it) is allowed by its hash."""
    page = get_swagger_ui_html(
        openapi_url="/api/openapi.json",
        title="dealflow API",
        swagger_js_url="/api/docs-static/swagger-ui-bundle.js",
        swagger_css_url="/api/docs-static/swagger-ui.css",
        swagger_favicon_url="/api/docs-static/favicon.png",
    )
    allow_inline_scripts(page)
    return page
