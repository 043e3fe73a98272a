"""Sessions over HTTP: refresh rotation and reuse, expiry, listing, logout."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import httpx

from gatehouse.server.clock import ManualClock
from tests.http.helpers import bearer, login, on_devices, register, signup


async def _refresh(client: httpx.AsyncClient, token: str) -> httpx.Response:
    return await client.post("/auth/refresh", json={"refresh_token": token})


async def test_refresh_returns_a_new_pair_for_the_same_session(client: httpx.AsyncClient) -> None:
    """A refresh gives new tokens, same session id, and the new access token works."""
    pair = await signup(client)
    response = await _refresh(client, pair["refresh_token"])
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    new = response.json()
    assert new["session_id"] == pair["session_id"]
    assert new["refresh_token"] != pair["refresh_token"]
    assert new["access_token"] != pair["access_token"]
    assert (await client.get("/users/me", headers=bearer(new))).status_code == 200


async def test_a_rotated_refresh_token_presented_again_revokes_the_session(
    client: httpx.AsyncClient,
) -> None:
    """Reusing an old refresh token fails and kills the newest tokens of the family too."""
    pair = await signup(client)
    new = (await _refresh(client, pair["refresh_token"])).json()
    reuse = await _refresh(client, pair["refresh_token"])
    assert reuse.status_code == 401
    assert reuse.json()["code"] == "invalid_grant"
    assert (await _refresh(client, new["refresh_token"])).status_code == 401
    assert (await client.get("/users/me", headers=bearer(new))).status_code == 401


async def test_reuse_revokes_only_that_session(client: httpx.AsyncClient) -> None:
    """Another device's session survives the reuse of one session's token."""
    victim, bystander = await on_devices(client, "a", "b")
    await _refresh(client, victim["refresh_token"])
    await _refresh(client, victim["refresh_token"])
    assert (await client.get("/users/me", headers=bearer(bystander))).status_code == 200


async def test_unknown_and_malformed_refresh_tokens_are_refused(
    client: httpx.AsyncClient,
) -> None:
    """Made-up tokens get 401 invalid_grant; an empty one gets 422."""
    await signup(client)
    for token in ["ghr_" + "A" * 43, "not-a-token", "x" * 300, "\u0000\u00ff"]:
        response = await _refresh(client, token)
        assert response.status_code == 401, token
        assert response.json()["code"] == "invalid_grant"
    assert (await _refresh(client, "")).status_code == 422


async def test_concurrent_refreshes_of_one_token_yield_exactly_one_pair(
    client: httpx.AsyncClient,
) -> None:
    """Of N simultaneous refreshes with one token, exactly one succeeds; no two live tokens."""
    pair = await signup(client)
    responses = await asyncio.gather(*(_refresh(client, pair["refresh_token"]) for _ in range(8)))
    winners = [r for r in responses if r.status_code == 200]
    assert len(winners) == 1
    assert all(r.status_code == 401 for r in responses if r.status_code != 200)
    # The losers were reuse: the session is gone, so the winner's token is dead as well.
    assert (await _refresh(client, winners[0].json()["refresh_token"])).status_code == 401


async def test_refresh_fails_after_the_idle_timeout(
    client: httpx.AsyncClient, clock: ManualClock
) -> None:
    """A refresh token unused for longer than REFRESH_IDLE_TTL is refused."""
    pair = await signup(client)
    clock.advance(timedelta(days=14, seconds=1))
    assert (await _refresh(client, pair["refresh_token"])).status_code == 401


async def test_refreshing_extends_the_idle_window_but_not_past_the_absolute_limit(
    client: httpx.AsyncClient, clock: ManualClock
) -> None:
    """Refreshing every 10 days keeps a session alive until REFRESH_ABSOLUTE_TTL (30 d)."""
    pair = await signup(client)
    token = pair["refresh_token"]
    for _ in range(2):
        clock.advance(timedelta(days=10))
        response = await _refresh(client, token)
        assert response.status_code == 200
        token = response.json()["refresh_token"]
    clock.advance(timedelta(days=10, seconds=1))
    assert (await _refresh(client, token)).status_code == 401


async def test_sessions_list_shows_devices_but_no_token_values(client: httpx.AsyncClient) -> None:
    """Each login is listed with device, IP and user agent; tokens never appear."""
    await register(client)
    laptop = await login(client, device_name="laptop")
    phone = await client.post(
        "/auth/login",
        json={"username": "alice", "password": "correct horse battery", "device_name": "phone"},
        headers={"User-Agent": "GatehouseTest/1.0"},
    )
    response = await client.get("/users/me/sessions", headers=bearer(laptop))
    assert response.status_code == 200
    listed = {s["device_name"]: s for s in response.json()}
    assert set(listed) == {"laptop", "phone"}
    assert listed["laptop"]["current"] is True
    assert listed["phone"]["current"] is False
    assert listed["phone"]["user_agent"] == "GatehouseTest/1.0"
    assert listed["phone"]["ip_address"] == "203.0.113.7"
    for secret in (laptop["refresh_token"], laptop["access_token"], phone.json()["refresh_token"]):
        assert secret not in response.text
    assert "ghr_" not in response.text


async def test_deleting_a_session_refuses_its_access_token_at_once(
    client: httpx.AsyncClient,
) -> None:
    """DELETE /users/me/sessions/{id} ends that session: its access and refresh tokens fail."""
    here, there = await on_devices(client, "here", "there")
    response = await client.delete(
        f"/users/me/sessions/{there['session_id']}", headers=bearer(here)
    )
    assert response.status_code == 204
    assert (await client.get("/users/me", headers=bearer(there))).status_code == 401
    assert (await _refresh(client, there["refresh_token"])).status_code == 401
    remaining = (await client.get("/users/me/sessions", headers=bearer(here))).json()
    assert [s["device_name"] for s in remaining] == ["here"]


async def test_another_users_session_cannot_be_deleted(client: httpx.AsyncClient) -> None:
    """Someone else's session id answers 404 (as an unknown id would) and stays alive."""
    alice = await signup(client, "alice")
    bob = await signup(client, "bob")
    response = await client.delete(f"/users/me/sessions/{bob['session_id']}", headers=bearer(alice))
    assert response.status_code == 404
    assert (await client.get("/users/me", headers=bearer(bob))).status_code == 200
    unknown = "00000000-0000-4000-8000-000000000000"
    assert (
        await client.delete(f"/users/me/sessions/{unknown}", headers=bearer(alice))
    ).status_code == 404


async def test_logout_ends_only_this_session(client: httpx.AsyncClient) -> None:
    """POST /auth/logout refuses this session's tokens at once; other sessions go on."""
    await register(client)
    here = await login(client)
    other = await login(client)
    assert (await client.post("/auth/logout", headers=bearer(here))).status_code == 204
    assert (await client.get("/users/me", headers=bearer(here))).status_code == 401
    assert (await _refresh(client, here["refresh_token"])).status_code == 401
    assert (await client.get("/users/me", headers=bearer(other))).status_code == 200


async def test_logout_all_ends_every_session(client: httpx.AsyncClient) -> None:
    """POST /auth/logout-all refuses every token of the user, this session's included."""
    await register(client)
    pairs = [await login(client) for _ in range(3)]
    assert (await client.post("/auth/logout-all", headers=bearer(pairs[0]))).status_code == 204
    for pair in pairs:
        assert (await client.get("/users/me", headers=bearer(pair))).status_code == 401
        assert (await _refresh(client, pair["refresh_token"])).status_code == 401
