"""Fixtures for the end-to-end tests: a fresh deployment dir and a fresh PostgreSQL database."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg  # type: ignore[import-untyped]
import pytest
import sqlalchemy as sa
from playwright.sync_api import Browser, sync_playwright

from tests.e2e.harness import Deployment, Server, register

# The maintenance database the suite may create databases from (as in tests/conftest.py).
POSTGRES_ADMIN_URL = os.environ.get(
    "GATEHOUSE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
).replace("postgresql+asyncpg://", "postgresql://", 1)


@pytest.fixture
def deployment(tmp_path: Path) -> Deployment:
    """A data dir that does not exist yet, and the base environment of every command."""
    return Deployment.fresh(tmp_path)


# Debian's Chromium, installed by .ci/run; Playwright never downloads a browser here.
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Headless Chromium for a module's browser tests (each test opens its own context)."""
    assert Path(CHROMIUM).exists(), "Chromium is missing: .ci/run installs Debian's chromium"
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture(scope="module")
def alice_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One `gatehouse serve` (fresh SQLite data dir) for a module's tests, with alice registered."""
    deployment = Deployment.fresh(tmp_path_factory.mktemp("serve"))
    with deployment.serve() as running, running.client() as client:
        register(client, "alice")
        yield running


@contextlib.asynccontextmanager
async def _fresh_postgres_database() -> AsyncIterator[str]:
    name = f"gatehouse_e2e_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(POSTGRES_ADMIN_URL, timeout=10)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        url = sa.engine.make_url(POSTGRES_ADMIN_URL).set(database=name)
        yield url.render_as_string(hide_password=False)
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


@pytest.fixture
async def postgres_url() -> AsyncIterator[str]:
    """The `postgresql://` URL of a new, empty database, dropped (forcibly) afterwards."""
    async with _fresh_postgres_database() as url:
        yield url


@pytest.fixture(scope="module")
async def module_postgres_url() -> AsyncIterator[str]:
    """Like `postgres_url`, shared by the tests of one module."""
    async with _fresh_postgres_database() as url:
        yield url
