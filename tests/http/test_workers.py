"""Two server processes on one database: what one revokes, the other refuses.

Each `Services` here stands for a worker process with its own caches; they share only the
database, as workers and hosts do.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from uuid import UUID

import httpx
import pytest

from gatehouse.server.accounts.models import UserChanges
from gatehouse.server.audit.models import Actor
from gatehouse.server.clock import ManualClock
from gatehouse.server.devices.models import DeviceStatus, LicenseChanges, LicenseStatus
from gatehouse.server.sessions.models import ClientInfo
from gatehouse.server.wiring import Services, build_services
from tests.conftest import make_settings
from tests.http.devices import create_license, fp, register_device, verify
from tests.http.helpers import admin_pair, bearer, login, register, signup


@pytest.fixture
async def other_worker(
    database_url: str, tmp_path: Path, clock: ManualClock, services: Services
) -> AsyncIterator[Services]:
    """A second set of services on the same database, as another worker would have."""
    second = build_services(make_settings(database_url, tmp_path), clock=clock)
    try:
        yield second
    finally:
        await second.close()


async def _warm(client: httpx.AsyncClient, pair: dict[str, str]) -> None:
    for _ in range(3):
        assert (await client.get("/users/me", headers=bearer(pair))).status_code == 200


async def test_a_logout_in_another_worker_is_refused_after_one_poll(
    client: httpx.AsyncClient, services: Services, other_worker: Services
) -> None:
    """Sessions ended by another worker fail here as soon as the invalidation log is read."""
    pair = await signup(client)
    await services.watcher.poll_once()
    await _warm(client, pair)
    me = (await client.get("/users/me", headers=bearer(pair))).json()
    await other_worker.sessions.logout_all(UUID(me["id"]))
    await services.watcher.poll_once()
    assert (await client.get("/users/me", headers=bearer(pair))).status_code == 401


async def test_a_deactivation_in_another_worker_is_refused_by_the_running_watcher(
    client: httpx.AsyncClient, services: Services, other_worker: Services
) -> None:
    """With the watcher running on its own, the refusal arrives within a few poll intervals."""
    pair = await signup(client)
    await _warm(client, pair)
    me = (await client.get("/users/me", headers=bearer(pair))).json()
    await other_worker.admin.update_user(None, UUID(me["id"]), UserChanges(is_active=False))
    status = 200
    for _ in range(40):  # 4 s at most; the default poll interval is 0.25 s
        status = (await client.get("/users/me", headers=bearer(pair))).status_code
        if status == 401:
            break
        await asyncio.sleep(0.1)
    assert status == 401


async def test_role_changes_in_another_worker_reach_cached_principals(
    client: httpx.AsyncClient, services: Services, other_worker: Services
) -> None:
    """A cached user is re-read after another worker changes its roles."""
    user = await register(client, "rita")
    pair = await login(client, "rita")
    await services.watcher.poll_once()
    await _warm(client, pair)
    await other_worker.admin.update_user(
        None, UUID(user["id"]), UserChanges(roles=frozenset({"user", "auditor"}))
    )
    await services.watcher.poll_once()
    me = (await client.get("/users/me", headers=bearer(pair))).json()
    assert me["roles"] == ["auditor", "user"]


async def test_tokens_signed_by_a_key_another_worker_rotated_in_are_accepted(
    client: httpx.AsyncClient, services: Services, other_worker: Services
) -> None:
    """A token with a kid this worker has not loaded makes it reload keys at once."""
    await register(client)
    await other_worker.keys.rotate()
    other_app_pair = await other_worker.sessions.open(
        await other_worker.accounts.authenticate("alice", "correct horse battery", ip=None),
        ClientInfo(),
    )
    response = await client.get("/users/me", headers=bearer(other_app_pair.access_token))
    assert response.status_code == 200


async def test_a_device_suspended_or_license_suspended_by_another_worker_is_refused_after_one_poll(
    client: httpx.AsyncClient, services: Services, other_worker: Services
) -> None:
    """Verify answers come from this worker's cache; a device or license change made by
    another worker reaches them as soon as the invalidation log is read."""
    admin = await admin_pair(client, services)
    lic = await create_license(client, admin)
    device = await register_device(client, admin, fp("m1"), license_id=lic["id"])
    await services.watcher.poll_once()
    for _ in range(3):
        assert (await verify(client, fp("m1"))).status_code == 200

    await other_worker.licenses.update(
        UUID(lic["id"]), LicenseChanges(status=LicenseStatus.SUSPENDED), by=Actor.cli()
    )
    await services.watcher.poll_once()
    assert (await verify(client, fp("m1"))).json()["code"] == "license_suspended"

    await other_worker.licenses.update(
        UUID(lic["id"]), LicenseChanges(status=LicenseStatus.ACTIVE), by=Actor.cli()
    )
    await services.watcher.poll_once()
    assert (await verify(client, fp("m1"))).status_code == 200
    await other_worker.devices.update(
        UUID(device["id"]), label=None, status=DeviceStatus.SUSPENDED, by=Actor.cli()
    )
    await services.watcher.poll_once()
    assert (await verify(client, fp("m1"))).json()["code"] == "device_suspended"
