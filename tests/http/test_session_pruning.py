"""Ended sessions and their refresh-token history are deleted after GATEHOUSE_SESSION_RETENTION
(30 days by default), in small batches, without changing any answer the API gives."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest
import sqlalchemy as sa

from gatehouse.server.clock import ManualClock
from gatehouse.server.sessions import service as session_service
from gatehouse.server.storage.tables import refresh_token_history, sessions
from gatehouse.server.wiring import Services
from tests.http.helpers import bearer, login, on_devices


async def _rows(services: Services) -> tuple[int, int]:
    """(sessions, refresh-token history rows) in the database."""
    async with services.db.read() as conn:
        count = sa.func.count()
        live = (await conn.execute(sa.select(count).select_from(sessions))).scalar_one()
        history = (
            await conn.execute(sa.select(count).select_from(refresh_token_history))
        ).scalar_one()
    return int(live), int(history)


async def _refresh(client: httpx.AsyncClient, token: str) -> httpx.Response:
    return await client.post("/auth/refresh", json={"refresh_token": token})


async def test_sessions_are_pruned_once_ended_for_longer_than_the_retention(
    client: httpx.AsyncClient,
    services: Services,
    clock: ManualClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Revoked, idle-expired and absolutely expired sessions go 30 days after they ended,
    history first, one row per transaction here; live sessions stay and keep working."""
    monkeypatch.setattr(session_service, "_PRUNE_BATCH", 1)
    # kept: refreshed, then expires at 30 d; revoked: logged out at once; idle: never
    # refreshed, ends at 14 d.
    kept, revoked, idle = await on_devices(client, "kept", "revoked", "idle")
    kept = (await _refresh(client, kept["refresh_token"])).json()
    first_revoked_token = revoked["refresh_token"]
    revoked = (await _refresh(client, first_revoked_token)).json()
    assert (await client.post("/auth/logout", headers=bearer(revoked))).status_code == 204
    clock.advance(timedelta(days=10))
    kept = (await _refresh(client, kept["refresh_token"])).json()  # idle end: day 24
    assert await _rows(services) == (3, 3)

    # Day 31: only the session logged out on day 0 ended more than 30 days ago.
    clock.advance(timedelta(days=21))
    assert await services.sessions.prune_ended() == 2  # its session and one history row
    assert await _rows(services) == (2, 2)
    # Its tokens are refused as before: unknown now, instead of reused or revoked.
    refused = await _refresh(client, first_revoked_token)
    assert (refused.status_code, refused.json()["code"]) == (401, "invalid_grant")

    # Day 45: the idle session (ended day 14) goes; the refreshed one (ended day 24) stays.
    clock.advance(timedelta(days=14))
    assert await services.sessions.prune_ended() == 1
    assert await _rows(services) == (1, 2)
    assert idle["session_id"] != kept["session_id"]

    # Day 55: the last old one goes, with its history; a session opened now is untouched.
    clock.advance(timedelta(days=10))
    fresh = await login(client, device_name="fresh")
    assert await services.sessions.prune_ended() == 3
    assert await _rows(services) == (1, 0)
    assert (await client.get("/users/me", headers=bearer(fresh))).status_code == 200
    assert (await _refresh(client, fresh["refresh_token"])).status_code == 200
    assert await services.sessions.prune_ended() == 0
