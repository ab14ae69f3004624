"""The web app: the HTTP API under /api/v1 and the pages, on one FastAPI application.

Both sit on the Python client (`client.api` and the `client.*_service` modules), the same
application layer the CLI calls; nothing here decides what a deal may do. Reads come from
PostgreSQL, never from a query to a running deal.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import fastapi_offline
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel
from starlette.middleware.sessions import SessionMiddleware

from client.api import DealflowClient, DealflowError
from web import api_analysis, api_deals, api_definitions, api_imports, api_insights, health, pages
from web.errors import on_dealflow_error, on_validation_error
from web.identity import Caller, api_caller
from web.settings import WebSettings

STATIC = Path(__file__).parent / "static"
SWAGGER_STATIC = Path(fastapi_offline.__file__).parent / "static"
SESSION_COOKIE = "dealflow_session"
SESSION_HOURS = 12


class Identity(BaseModel):
    name: str
    role: str | None
    team: str | None
    via: str
    access_control: bool


def create_app(settings: WebSettings, client: DealflowClient | None = None) -> FastAPI:
    """The application; it connects its own client at start-up unless given one."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        own = client is None
        app.state.client = client or await DealflowClient.connect()
        try:
            yield
        finally:
            if own:
                await app.state.client.close()

    app = FastAPI(
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
    )
    app.state.web_settings = settings
    if client is not None:
        app.state.client = client
    app.add_middleware(
        SessionMiddleware,
        secret_key=settings.secret_key,
        session_cookie=SESSION_COOKIE,
        max_age=SESSION_HOURS * 3600,
        same_site="strict",
        https_only=settings.secure_cookies,
    )
    app.add_exception_handler(DealflowError, on_dealflow_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    for router in (api_deals.router, api_definitions.router, api_insights.router, api_imports.router):
        app.include_router(router, prefix="/api/v1")
    app.include_router(api_analysis.router, prefix="/api/v1")
    app.include_router(health.router)
    app.add_api_route("/api/v1/me", whoami, methods=["GET"], tags=["identity"], response_model=Identity)
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
    """Swagger UI, served from this server: no script or style comes from elsewhere."""
    return get_swagger_ui_html(
        openapi_url="/api/openapi.json",
        title="dealflow API",
        swagger_js_url="/api/docs-static/swagger-ui-bundle.js",
        swagger_css_url="/api/docs-static/swagger-ui.css",
        swagger_favicon_url="/api/docs-static/favicon.png",
    )
