"""The FastAPI application factory.

`create_app()` is the ASGI entry point (uvicorn runs it with `factory=True`). It builds
Settings and services unless given them, which is how tests inject theirs.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

import gatehouse
from gatehouse.server.config import Settings
from gatehouse.server.http import errors
from gatehouse.server.http.middleware import BodySizeLimit
from gatehouse.server.http.routers import admin, auth, health, oauth, users, wellknown
from gatehouse.server.wiring import Services, build_services


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

    docs = settings.docs_enabled
    app = FastAPI(
        title="Gatehouse",
        version=gatehouse.__version__,
        lifespan=lifespan,
        docs_url="/docs" if docs else None,
        redoc_url=None,
        openapi_url="/openapi.json" if docs else None,
        swagger_ui_oauth2_redirect_url="/docs/oauth2-redirect" if docs else None,
    )
    app.state.services = services
    errors.install(app)
    for module in (auth, oauth, users, admin, wellknown, health):
        app.include_router(module.router)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    return app
