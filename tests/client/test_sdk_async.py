"""`AsyncClient` against the real app over ASGI (SQLite and PostgreSQL): accounts, sessions,
API keys, refresh rotation, the `auth` flow, and the errors it raises."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import timedelta

import httpx
import pytest
from fastapi import FastAPI

from gatehouse.client import (
    ApiError,
    AsyncClient,
    AuthError,
    ClientToken,
    InvalidCredentials,
    SessionRevoked,
    StoredTokens,
    TokenPair,
    User,
)
from gatehouse.server.clock import ManualClock

BASE = "http://testserver"
PASSWORD = "correct horse battery"
MakeClient = Callable[..., AsyncClient]


class AsyncRecording(httpx.AsyncBaseTransport):
    """Passes every request to the real app unchanged and records `(method, path)`."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.seen: list[tuple[str, str]] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.seen.append((request.method, request.url.path))
        return await self.inner.handle_async_request(request)

    def count(self, method: str, path: str) -> int:
        return self.seen.count((method, path))

    async def aclose(self) -> None:
        await self.inner.aclose()


@pytest.fixture
def recording(app: FastAPI) -> AsyncRecording:
    return AsyncRecording(httpx.ASGITransport(app=app, client=("203.0.113.7", 50000)))


@pytest.fixture
async def make_client(recording: AsyncRecording, clock: ManualClock) -> AsyncIterator[MakeClient]:
    """AsyncClients over the app, on the server's ManualClock unless told otherwise."""
    made: list[AsyncClient] = []

    def make(**options: object) -> AsyncClient:
        options.setdefault("clock", lambda: clock.now().timestamp())
        client = AsyncClient(BASE, transport=recording, **options)  # type: ignore[arg-type]
        made.append(client)
        return client

    yield make
    for client in made:
        await client.aclose()


@pytest.fixture
async def alice(make_client: MakeClient) -> AsyncClient:
    """A client logged in as alice (registered through the SDK)."""
    gatehouse = make_client()
    await gatehouse.register("alice", PASSWORD, email="alice@example.com")
    await gatehouse.login("alice", PASSWORD, device_name="laptop")
    return gatehouse


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_register_login_and_me_return_the_servers_records(make_client: MakeClient) -> None:
    """register returns the new User, login a TokenPair with its session, me() the user."""
    gatehouse = make_client()
    user = await gatehouse.register("alice", PASSWORD, email="alice@example.com")
    assert isinstance(user, User)
    assert (user.username, user.email, user.roles) == ("alice", "alice@example.com", ("user",))
    pair = await gatehouse.login("Alice", PASSWORD, device_name="laptop")
    assert isinstance(pair, TokenPair)
    assert pair.token_type == "bearer"
    assert pair.expires_in > 0
    assert pair.refresh_token.startswith("ghr_")
    me = await gatehouse.me()
    assert (me.id, me.username, me.roles) == (user.id, "alice", ("user",))
    assert pair.access_token not in repr(pair)
    assert pair.refresh_token not in repr(pair)


async def test_a_taken_username_is_an_api_error_with_the_problem(make_client: MakeClient) -> None:
    """Registering a taken name raises ApiError(409, "username_taken", detail) with the body."""
    gatehouse = make_client()
    await gatehouse.register("alice", PASSWORD)
    with pytest.raises(ApiError) as caught:
        await gatehouse.register("alice", PASSWORD)
    error = caught.value
    assert (error.status, error.code) == (409, "username_taken")
    assert error.detail
    assert error.problem["status"] == 409
    assert "type" in error.problem
    assert isinstance(error, AuthError)


async def test_a_wrong_password_is_invalid_credentials(
    make_client: MakeClient, alice: AsyncClient
) -> None:
    """A wrong password raises InvalidCredentials carrying 401 invalid_credentials."""
    with pytest.raises(InvalidCredentials) as caught:
        await make_client().login("alice", "wrong password here")
    assert (caught.value.status, caught.value.code) == (401, "invalid_credentials")


async def test_a_call_made_logged_out_is_session_revoked_without_a_request(
    make_client: MakeClient, recording: AsyncRecording
) -> None:
    """me() before any login raises SessionRevoked and sends nothing."""
    with pytest.raises(SessionRevoked):
        await make_client().me()
    assert recording.seen == []


async def test_sessions_lists_this_login_as_current(
    make_client: MakeClient, alice: AsyncClient
) -> None:
    """sessions() returns the server's records; this client's session is `current`."""
    other = make_client()
    await other.login("alice", PASSWORD, device_name="phone")
    listed = await alice.sessions()
    by_device = {s.device_name: s for s in listed}
    assert set(by_device) == {"laptop", "phone"}
    assert by_device["laptop"].current
    assert not by_device["phone"].current
    assert by_device["laptop"].ip_address == "203.0.113.7"


async def test_revoke_session_ends_another_session(
    make_client: MakeClient, alice: AsyncClient
) -> None:
    """revoke_session(id) ends that session: its client then gets SessionRevoked."""
    phone = make_client()
    pair = await phone.login("alice", PASSWORD, device_name="phone")
    await alice.revoke_session(pair.session_id)
    assert [s.device_name for s in await alice.sessions()] == ["laptop"]
    with pytest.raises(SessionRevoked):
        await phone.me()
    assert phone.store.load() is None


async def test_revoking_the_current_session_forgets_its_tokens(alice: AsyncClient) -> None:
    """revoke_session of this client's own session clears its store."""
    current = next(s for s in await alice.sessions() if s.current)
    await alice.revoke_session(current.id)
    assert alice.store.load() is None
    with pytest.raises(SessionRevoked):
        await alice.me()


async def test_logout_ends_the_session_and_forgets_the_tokens(
    alice: AsyncClient, client: httpx.AsyncClient
) -> None:
    """After logout() the server refuses the old access token and me() is SessionRevoked."""
    stored = alice.store.load()
    assert stored is not None
    await alice.logout()
    assert alice.store.load() is None
    assert (await client.get("/users/me", headers=_bearer(stored.access_token))).status_code == 401
    with pytest.raises(SessionRevoked):
        await alice.me()
    with pytest.raises(SessionRevoked):
        await alice.logout()


async def test_logout_all_ends_every_session(make_client: MakeClient, alice: AsyncClient) -> None:
    """logout_all() ends the other device's session as well as this one."""
    phone = make_client()
    await phone.login("alice", PASSWORD, device_name="phone")
    await alice.logout_all()
    with pytest.raises(SessionRevoked):
        await phone.me()
    with pytest.raises(SessionRevoked):
        await alice.me()


async def test_refresh_rotates_the_refresh_token(
    alice: AsyncClient, client: httpx.AsyncClient
) -> None:
    """refresh() returns a new pair for the same session; the old refresh token is spent."""
    before = alice.store.load()
    assert before is not None
    assert before.refresh_token is not None
    pair = await alice.refresh()
    assert isinstance(pair, TokenPair)
    assert str(pair.session_id) == before.session_id
    assert pair.refresh_token != before.refresh_token
    assert (await alice.me()).username == "alice"
    reused = await client.post("/auth/refresh", json={"refresh_token": before.refresh_token})
    assert reused.status_code == 401


async def test_login_with_api_key_uses_client_credentials(
    make_client: MakeClient, alice: AsyncClient, recording: AsyncRecording
) -> None:
    """A key made through the API logs a second client in via POST /oauth/token."""
    stored = alice.store.load()
    assert stored is not None
    made = await httpx.AsyncClient(transport=recording, base_url=BASE).post(
        "/users/me/api-keys", json={"name": "ci"}, headers=_bearer(stored.access_token)
    )
    assert made.status_code == 201, made.text
    script = make_client()
    token = await script.login_with_api_key(made.json()["key"])
    assert isinstance(token, ClientToken)
    assert token.scope == "user"
    assert recording.count("POST", "/oauth/token") == 1
    assert (await script.me()).username == "alice"


async def test_a_bad_api_key_is_invalid_credentials(make_client: MakeClient) -> None:
    """A malformed key fails before any request; a well-formed unknown one gets invalid_client."""
    script = make_client()
    with pytest.raises(InvalidCredentials):
        await script.login_with_api_key("not-a-key")
    with pytest.raises(InvalidCredentials) as caught:
        await script.login_with_api_key("ghk_" + "a" * 16 + "_" + "b" * 32)
    assert (caught.value.status, caught.value.code) == (401, "invalid_client")


async def test_auth_attaches_the_token_to_another_services_calls(
    alice: AsyncClient, recording: AsyncRecording
) -> None:
    """A plain httpx.AsyncClient with auth=client.auth is served as alice."""
    async with httpx.AsyncClient(transport=recording, base_url=BASE, auth=alice.auth) as api:
        answer = await api.get("/users/me")
    assert answer.status_code == 200
    assert answer.json()["username"] == "alice"


async def test_auth_refreshes_shortly_before_expiry(
    alice: AsyncClient, recording: AsyncRecording, clock: ManualClock
) -> None:
    """Within 30 s of expiry (still valid) a call refreshes once first and sends the new token."""
    stored = alice.store.load()
    assert stored is not None
    clock.advance(timedelta(seconds=stored.expires_at - clock.now().timestamp() - 20))
    async with httpx.AsyncClient(transport=recording, base_url=BASE, auth=alice.auth) as api:
        first = await api.get("/users/me")
        second = await api.get("/users/me")
    assert first.status_code == second.status_code == 200
    assert recording.count("POST", "/auth/refresh") == 1
    renewed = alice.store.load()
    assert renewed is not None
    assert renewed.access_token != stored.access_token
    assert first.request.headers["Authorization"] == f"Bearer {renewed.access_token}"


async def test_a_401_refreshes_once_and_retries(
    make_client: MakeClient, recording: AsyncRecording, clock: ManualClock
) -> None:
    """A token the server refuses (its clock past expiry, the client's not) is renewed and the
    call sent again: one refresh, two GETs, a 200."""
    frozen = clock.now().timestamp()
    gatehouse = make_client(clock=lambda: frozen)
    await gatehouse.register("alice", PASSWORD)
    await gatehouse.login("alice", PASSWORD)
    clock.advance(timedelta(hours=1))
    assert (await gatehouse.me()).username == "alice"
    assert recording.count("POST", "/auth/refresh") == 1
    assert recording.count("GET", "/users/me") == 2


async def test_twenty_tasks_with_an_expired_token_share_one_refresh(
    alice: AsyncClient, recording: AsyncRecording, clock: ManualClock
) -> None:
    """20 concurrent tasks after expiry make exactly one POST /auth/refresh and all succeed."""
    clock.advance(timedelta(hours=1))
    async with httpx.AsyncClient(transport=recording, base_url=BASE, auth=alice.auth) as api:
        answers = await asyncio.gather(*(api.get("/users/me") for _ in range(20)))
    assert [a.status_code for a in answers] == [200] * 20
    assert recording.count("POST", "/auth/refresh") == 1
    assert (await alice.me()).username == "alice"  # the session was not revoked as reused


async def test_twenty_tasks_refused_with_401_share_one_refresh(
    make_client: MakeClient, recording: AsyncRecording, clock: ManualClock
) -> None:
    """20 concurrent calls all refused (401) with one token renew it once and all succeed."""
    frozen = clock.now().timestamp()
    gatehouse = make_client(clock=lambda: frozen)
    await gatehouse.register("alice", PASSWORD)
    await gatehouse.login("alice", PASSWORD)
    clock.advance(timedelta(hours=1))
    users = await asyncio.gather(*(gatehouse.me() for _ in range(20)))
    assert {u.username for u in users} == {"alice"}
    assert recording.count("POST", "/auth/refresh") == 1


async def test_a_session_revoked_elsewhere_is_session_revoked(
    make_client: MakeClient, alice: AsyncClient, clock: ManualClock
) -> None:
    """After logout_all from another client, a call whose refresh is refused raises
    SessionRevoked and the store is cleared."""
    other = make_client()
    await other.login("alice", PASSWORD)
    await other.logout_all()
    clock.advance(timedelta(hours=1))
    with pytest.raises(SessionRevoked):
        await alice.me()
    assert alice.store.load() is None


async def test_a_post_refused_with_401_is_sent_again_with_its_body(
    alice: AsyncClient, recording: AsyncRecording
) -> None:
    """A POST with a JSON body whose token the server refuses is renewed and resent whole."""
    stored = alice.store.load()
    assert stored is not None
    alice.store.save(
        StoredTokens("garbage", stored.refresh_token, stored.expires_at, stored.session_id)
    )
    async with httpx.AsyncClient(transport=recording, base_url=BASE, auth=alice.auth) as api:
        made = await api.post("/users/me/api-keys", json={"name": "after-401"})
    assert made.status_code == 201, made.text
    assert made.json()["name"] == "after-401"
    assert recording.count("POST", "/users/me/api-keys") == 2
    assert recording.count("POST", "/auth/refresh") == 1
