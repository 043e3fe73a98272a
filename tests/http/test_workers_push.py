"""On PostgreSQL, other workers learn of a revocation by notification, not by the next poll.

The poll interval here is 10 s, so a refusal within a second can only come from the NOTIFY
that the revoking transaction sent as it committed.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from uuid import UUID

import httpx
import pytest
import sqlalchemy as sa

from gatehouse.server.clock import ManualClock
from gatehouse.server.config import Settings
from gatehouse.server.wiring import Services, build_services
from tests.conftest import make_settings
from tests.http.helpers import admin_pair, bearer, signup

pytestmark = pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)

SLOW_POLL = 10.0


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return make_settings(database_url, tmp_path, revocation_poll_interval=SLOW_POLL)


@pytest.fixture
async def other_worker(
    settings: Settings, clock: ManualClock, services: Services
) -> AsyncIterator[Services]:
    second = build_services(settings, clock=clock)
    try:
        yield second
    finally:
        await second.close()


async def _status_soon(client: httpx.AsyncClient, pair: dict[str, str], want: int) -> int:
    """GET /users/me until it answers `want`, for one second at most; the last status."""
    status = 0
    for _ in range(50):
        status = (await client.get("/users/me", headers=bearer(pair))).status_code
        if status == want:
            break
        await asyncio.sleep(0.02)
    return status


async def test_a_logout_in_another_worker_is_refused_within_a_second(
    client: httpx.AsyncClient, services: Services, other_worker: Services
) -> None:
    """The cached session is evicted by the notification, ten times sooner than a poll."""
    await asyncio.wait_for(services.watcher.listening.wait(), timeout=5)
    pair = await signup(client)
    for _ in range(3):  # cached now, and trusted for 8 poll intervals
        assert (await client.get("/users/me", headers=bearer(pair))).status_code == 200
    me = (await client.get("/users/me", headers=bearer(pair))).json()
    await other_worker.sessions.logout_all(UUID(me["id"]))
    assert await _status_soon(client, pair, 401) == 401


async def test_the_listener_comes_back_after_its_connection_is_killed(
    client: httpx.AsyncClient, services: Services, other_worker: Services
) -> None:
    """A terminated listening connection is reopened, and notifications flow again."""
    await asyncio.wait_for(services.watcher.listening.wait(), timeout=5)
    async with other_worker.db.write() as conn:
        await conn.execute(
            sa.text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND query LIKE 'LISTEN %' "
                "AND pid <> pg_backend_pid()"
            )
        )
    for _ in range(100):  # it was lost ...
        if not services.watcher.listening.is_set():
            break
        await asyncio.sleep(0.02)
    assert not services.watcher.listening.is_set()
    await asyncio.wait_for(services.watcher.listening.wait(), timeout=5)  # ... and is back
    pair = await signup(client)
    me = (await client.get("/users/me", headers=bearer(pair))).json()
    await other_worker.sessions.logout_all(UUID(me["id"]))
    assert await _status_soon(client, pair, 401) == 401


async def _soon(check: Callable[[], Awaitable[bool]]) -> bool:
    """Whether `check` comes true within one second."""
    for _ in range(50):
        if await check():
            return True
        await asyncio.sleep(0.02)
    return False


async def test_key_revocations_and_logouts_elsewhere_reach_keys_and_introspection(
    client: httpx.AsyncClient, services: Services, other_worker: Services
) -> None:
    """A key revoked and a session ended by another worker: within a second (ten times sooner
    than a poll) the key is refused here and this worker's introspection says inactive."""
    await asyncio.wait_for(services.watcher.listening.wait(), timeout=5)
    admin = await admin_pair(client, services)
    alice = await signup(client)
    created = await client.post("/users/me/api-keys", json={"name": "k"}, headers=bearer(alice))
    key = {"X-API-Key": created.json()["key"]}

    async def introspected() -> dict[str, object]:
        response = await client.post(
            "/oauth/introspect", data={"token": alice["access_token"]}, headers=bearer(admin)
        )
        body: dict[str, object] = response.json()
        return body

    for _ in range(3):  # cached now
        assert (await client.get("/users/me", headers=key)).status_code == 200
        assert (await introspected())["active"] is True

    await other_worker.api_keys.revoke(UUID(created.json()["id"]), owner_id=None)
    assert await _soon(lambda: _is(client.get("/users/me", headers=key), 401))
    me = (await client.get("/users/me", headers=bearer(alice))).json()
    await other_worker.sessions.logout_all(UUID(me["id"]))

    async def inactive() -> bool:
        return (await introspected()) == {"active": False}

    assert await _soon(inactive)


async def _is(request: Awaitable[httpx.Response], status: int) -> bool:
    return (await request).status_code == status
