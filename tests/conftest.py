"""Shared fixtures: a real database per backend, wired services, the real app over ASGI.

Every test that takes `database_url` (directly or through `services`, `app`, `client`)
runs once on SQLite and once on PostgreSQL. PostgreSQL is required: the suite fails, never
skips, when it cannot be reached. Each backend gets a fresh database for the session and
empty tables for each test.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import sqlalchemy as sa
from fastapi import FastAPI

from gatehouse.server.clock import ManualClock
from gatehouse.server.config import Settings
from gatehouse.server.http.app import create_app
from gatehouse.server.storage import migrate
from gatehouse.server.storage.database import Database
from gatehouse.server.storage.tables import metadata
from gatehouse.server.wiring import Services, build_services

POSTGRES_URL = os.environ.get(
    "GATEHOUSE_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)
TEST_SECRET = "test-secret-" + "x" * 40
BACKENDS = ["sqlite", "postgresql"]


def _asyncpg_dsn(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


@pytest.fixture(scope="session", params=BACKENDS)
async def database_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[str]:
    """A migrated, empty database of one backend, for the whole session."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('sqlite') / 'test.db'}"
        yield await _migrated(url)
        return
    name = f"gatehouse_test_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(_asyncpg_dsn(POSTGRES_URL), timeout=10)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        base = sa.engine.make_url(POSTGRES_URL)
        url = base.set(database=name).render_as_string(hide_password=False)
        yield await _migrated(url)
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def _migrated(url: str) -> str:
    db = Database(url)
    try:
        await migrate.upgrade(db)
    finally:
        await db.dispose()
    return url


async def truncate_all(db: Database) -> None:
    tables = [t.name for t in reversed(metadata.sorted_tables)]
    async with db.write() as conn:
        if db.is_sqlite:
            for name in tables:
                await conn.execute(sa.text(f"DELETE FROM {name}"))  # noqa: S608 - our table names
        else:
            await conn.execute(sa.text(f"TRUNCATE {', '.join(tables)} CASCADE"))


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


def make_settings(database_url: str, data_dir: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": database_url,
        "data_dir": data_dir,
        "secret_key": TEST_SECRET,
        "password_hashing": "test",
        "issuer": "https://auth.example.test",
        "audience": "gatehouse-tests",
    }
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return make_settings(database_url, tmp_path)


@pytest.fixture
async def services(settings: Settings, clock: ManualClock) -> AsyncIterator[Services]:
    built = build_services(settings, clock=clock)
    await truncate_all(built.db)
    try:
        yield built
    finally:
        await built.close()


@pytest.fixture
async def app(services: Services) -> AsyncIterator[FastAPI]:
    application = create_app(services=services)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c
