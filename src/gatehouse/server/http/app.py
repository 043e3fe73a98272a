"""The FastAPI application factory.

`create_app()` is the ASGI entry point (uvicorn runs it with `factory=True`). It builds
Settings and services unless given them, which is how tests inject theirs.

The front door, outermost first: `SecurityHeaders` (every response, a 500 included, so it
sits outside Starlette's error middleware), `ClientAddress` (only when proxies are
trusted), `QueryApiKey` (only when keys may come in the query), `RequestContext` (the
request id and origin), `AccessLog` (the access log line and the HTTP metrics, 500s
included), Starlette's 500 handler, `BodySizeLimit`, the exception handlers of
http/errors.py, the routers.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from starlette.types import ASGIApp

import gatehouse
from gatehouse.server.config import Settings
from gatehouse.server.http import errors
from gatehouse.server.http.access_log import AccessLog
from gatehouse.server.http.client_address import ClientAddress
from gatehouse.server.http.headers import SecurityHeaders
from gatehouse.server.http.middleware import BodySizeLimit, QueryApiKey
from gatehouse.server.http.request_context import RequestContext
from gatehouse.server.http.routers import (
    admin,
    audit,
    auth,
    devices,
    docs,
    health,
    licensing,
    metrics,
    oauth,
    pages,
    recovery,
    users,
    wellknown,
)
from gatehouse.server.wiring import Services, build_services


class GatehouseApp(FastAPI):
    """FastAPI with the front-door layers wrapped around Starlette's whole stack."""

    def __init__(self, *, settings: Settings, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._front_settings = settings

    def build_middleware_stack(self) -> ASGIApp:
        app: ASGIApp = RequestContext(AccessLog(super().build_middleware_stack()))
        settings = self._front_settings
        if settings.api_key_in_query:
            app = QueryApiKey(app)
        if settings.trusted_proxies:
            app = ClientAddress(app, trusted=settings.trusted_proxies)
        return SecurityHeaders(app, hsts=settings.issuer.startswith("https://"))


def create_app(settings: Settings | None = None, *, services: Services | None = None) -> FastAPI:
    if services is None:
        services = build_services(settings or Settings())
    settings = services.settings

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await services.start()
        try:
            yield
        finally:
            await services.close()

    app = GatehouseApp(
        settings=settings,
        title="Gatehouse",
        version=gatehouse.__version__,
        lifespan=lifespan,
        # /docs is ours (routers/docs.py): self-hosted assets, no inline script.
        docs_url=None,
        redoc_url=None,
        swagger_ui_oauth2_redirect_url=None,
        openapi_url="/openapi.json" if settings.docs_enabled else None,
    )
    app.state.services = services
    errors.install(app)
    # Routers are matched in this order, each route by a regex: the hottest come first
    # (machines checking in, token checks and logins), administration last.
    for module in (
        devices,
        users,
        auth,
        oauth,
        wellknown,
        health,
        recovery,
        pages,
        admin,
        licensing,
        audit,
    ):
        app.include_router(module.router)
    if settings.docs_enabled:
        app.include_router(docs.router)
    if settings.metrics_enabled:
        app.include_router(metrics.router)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    return app
