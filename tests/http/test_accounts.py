"""Accounts over HTTP: register, login, profile, password change."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import timedelta
from uuid import UUID

import bcrypt
import httpx
import pytest
import sqlalchemy as sa
from pwdlib.hashers.argon2 import Argon2Hasher

from gatehouse.server.accounts.models import UserChanges
from gatehouse.server.accounts.passwords import ARGON2_PROFILES
from gatehouse.server.clock import ManualClock
from gatehouse.server.storage.tables import sessions, users
from gatehouse.server.wiring import Services
from tests.http.helpers import PASSWORD, bearer, login, on_devices, register, signup


async def test_register_returns_the_new_user_without_secrets(client: httpx.AsyncClient) -> None:
    """Registration answers 201 with the user and no password or hash in the body."""
    response = await client.post(
        "/auth/register",
        json={"username": "Alice", "password": PASSWORD, "email": "alice@example.com"},
    )
    assert response.status_code == 201
    body = response.json()
    assert body["username"] == "Alice"
    assert body["email"] == "alice@example.com"
    assert body["roles"] == ["user"]
    assert body["is_active"] is True
    assert PASSWORD not in response.text
    assert "hash" not in response.text


@pytest.mark.parametrize("variant", ["alice", "ALICE", "Ａｌｉｃｅ"])  # noqa: RUF001 - fullwidth on purpose
async def test_usernames_differing_in_case_or_width_are_one_account(
    client: httpx.AsyncClient, variant: str
) -> None:
    """A name that canonicalises to an existing one is taken: 409 username_taken."""
    await register(client, "Alice")
    response = await client.post("/auth/register", json={"username": variant, "password": PASSWORD})
    assert response.status_code == 409
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "username_taken"


async def test_login_accepts_any_case_of_the_username(client: httpx.AsyncClient) -> None:
    """Logging in as ALICE reaches the account registered as Alice."""
    await register(client, "Alice")
    pair = await login(client, "ALICE")
    me = await client.get("/users/me", headers=bearer(pair))
    assert me.json()["username"] == "Alice"


@pytest.mark.parametrize(
    ("password", "reason_fragment"),
    [
        ("short", "at least 8"),
        ("x" * 257, "at most 256"),
        ("password123", "too common"),
        ("PASSWORD123", "too common"),
        ("bob-the-builder", "username"),
        ("has\x00nul-byte", "control"),
    ],
)
async def test_weak_passwords_are_refused_and_nothing_is_stored(
    client: httpx.AsyncClient, password: str, reason_fragment: str
) -> None:
    """A password that breaks the policy gets 422 weak_password and creates no account."""
    response = await client.post(
        "/auth/register", json={"username": "bob-the-builder", "password": password}
    )
    assert response.status_code == 422
    body = response.json()
    assert body["code"] == "weak_password"
    assert body["errors"][0]["field"] == "password"
    assert reason_fragment in body["errors"][0]["reason"]
    assert password not in response.text
    # The name is still free: nothing was stored.
    await register(client, "bob-the-builder")


@pytest.mark.parametrize("username", ["has space", "tab\there", "nul\x00name", "x" * 65, ""])
async def test_invalid_usernames_are_refused(client: httpx.AsyncClient, username: str) -> None:
    """Spaces, control characters, empty and over-long names get 422."""
    response = await client.post(
        "/auth/register", json={"username": username, "password": PASSWORD}
    )
    assert response.status_code == 422
    assert response.json()["code"] in {"invalid_username", "validation_failed"}


async def test_password_is_normalised_the_same_on_set_and_verify(
    client: httpx.AsyncClient,
) -> None:
    """RFC 8265 OpaqueString maps a no-break space to a space, on register and login alike."""
    await register(client, "carol", password="correct\u00a0horse battery")
    await login(client, "carol", password="correct horse battery")


async def test_validation_errors_name_the_field_and_never_echo_input(
    client: httpx.AsyncClient,
) -> None:
    """A 422 lists field and reason and does not contain the submitted values."""
    secret = "Secret-Value-" + "z" * 1100
    response = await client.post(
        "/auth/register", json={"username": "dave", "password": secret, "email": "not-an-email<>"}
    )
    assert response.status_code == 422
    body = response.json()
    assert body["code"] == "validation_failed"
    fields = {e["field"] for e in body["errors"]}
    assert fields == {"password", "email"}
    assert "Secret-Value" not in response.text
    assert "not-an-email" not in response.text
    assert "input" not in body["errors"][0]


async def test_missing_fields_get_422_with_field_names(client: httpx.AsyncClient) -> None:
    """A body without username and password names both fields."""
    response = await client.post("/auth/register", json={})
    assert response.status_code == 422
    assert {e["field"] for e in response.json()["errors"]} == {"username", "password"}


async def test_login_returns_a_token_pair_that_is_not_cached(client: httpx.AsyncClient) -> None:
    """Login answers the documented pair shape with Cache-Control: no-store."""
    await register(client)
    response = await client.post("/auth/login", json={"username": "alice", "password": PASSWORD})
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["pragma"] == "no-cache"
    body = response.json()
    assert set(body) == {"access_token", "token_type", "expires_in", "refresh_token", "session_id"}
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 900


async def test_wrong_password_unknown_user_and_inactive_user_look_identical(
    client: httpx.AsyncClient, services: Services
) -> None:
    """The three failures answer the same 401 body, so none tells an attacker anything."""
    await register(client, "alice")
    user = await register(client, "eve")
    await services.admin.update_user(None, UUID(user["id"]), UserChanges(is_active=False))
    attempts = [
        {"username": "alice", "password": "wrong password!"},
        {"username": "nobody", "password": PASSWORD},
        {"username": "eve", "password": PASSWORD},
        {"username": "bad name", "password": PASSWORD},
    ]
    responses = [await client.post("/auth/login", json=a) for a in attempts]
    assert {r.status_code for r in responses} == {401}
    assert len({r.content for r in responses}) == 1
    assert responses[0].json()["code"] == "invalid_credentials"
    assert responses[0].headers["www-authenticate"].startswith("Bearer")


async def test_bcrypt_hash_is_verified_and_upgraded_to_argon2id(
    client: httpx.AsyncClient, services: Services
) -> None:
    """An imported bcrypt hash lets its user log in once, then is stored as argon2id."""
    user = await register(client, "legacy")
    legacy_hash = bcrypt.hashpw(b"imported password 1", bcrypt.gensalt(rounds=4)).decode()
    async with services.db.write() as conn:
        await conn.execute(
            sa.update(users).where(users.c.username == "legacy").values(password_hash=legacy_hash)
        )
    await login(client, "legacy", password="imported password 1")
    async with services.db.read() as conn:
        stored = (
            await conn.execute(sa.select(users.c.password_hash).where(users.c.username == "legacy"))
        ).scalar_one()
    assert stored.startswith("$argon2id$")
    await login(client, "legacy", password="imported password 1")
    assert user["username"] == "legacy"


def argon2_hash(password: str) -> str:
    """A hash of `password` as the test profile makes it, without the (held) hasher."""
    memory, iterations, lanes = ARGON2_PROFILES["test"]
    return Argon2Hasher(memory_cost=memory, time_cost=iterations, parallelism=lanes).hash(password)


@asynccontextmanager
async def hashing_held(services: Services) -> AsyncIterator[Callable[[], Awaitable[None]]]:
    """Every hashing thread is held until the block ends. Yields `queued()`, which returns
    once a request's hash waits in the pool (at most 5 s)."""
    release = threading.Event()
    pool = services.hasher._pool
    loop = asyncio.get_running_loop()
    blockers = [
        loop.run_in_executor(pool, release.wait) for _ in range(services.settings.hash_concurrency)
    ]

    async def queued() -> None:
        for _ in range(5000):
            if pool._work_queue.qsize():
                return
            await asyncio.sleep(0.001)
        raise AssertionError("no hash was queued within 5 s")

    try:
        yield queued
    finally:
        release.set()
        await asyncio.gather(*blockers)


async def _stored_hash(services: Services, username: str) -> str:
    async with services.db.read() as conn:
        stored: str = (
            await conn.execute(sa.select(users.c.password_hash).where(users.c.username == username))
        ).scalar_one()
    return stored


async def test_a_rehash_never_puts_back_a_password_changed_meanwhile(
    client: httpx.AsyncClient, services: Services
) -> None:
    """A bcrypt user's login checks the old password while its hash waits for a thread; the
    password is changed before the login's upgrade to argon2id is written. The upgrade is
    dropped: the new password works afterwards and the old one does not."""
    await register(client, "legacy")
    old_hash = bcrypt.hashpw(b"imported password 1", bcrypt.gensalt(rounds=4)).decode()
    async with services.db.write() as conn:
        await conn.execute(
            sa.update(users).where(users.c.username == "legacy").values(password_hash=old_hash)
        )
    new_hash = argon2_hash("a changed password 2")
    old = {"username": "legacy", "password": "imported password 1"}
    async with hashing_held(services) as queued:
        old_login = asyncio.ensure_future(client.post("/auth/login", json=old))
        await queued()
        async with services.db.write() as conn:  # the change commits first
            await conn.execute(
                sa.update(users).where(users.c.username == "legacy").values(password_hash=new_hash)
            )
    assert (await old_login).status_code == 200
    assert await _stored_hash(services, "legacy") == new_hash
    await login(client, "legacy", password="a changed password 2")
    assert (await client.post("/auth/login", json=old)).status_code == 401


async def test_a_login_in_flight_when_the_password_changes_opens_no_session(
    client: httpx.AsyncClient, services: Services, clock: ManualClock
) -> None:
    """A login checks the old password while its hash waits for a thread; the password is
    changed (every session revoked) before the login opens its session. The login answers
    401 and the user has no live session: the change locked out whoever knew the old
    password, this login included."""
    user_id = UUID((await register(client, "alice"))["id"])
    async with hashing_held(services) as queued:
        in_flight = asyncio.ensure_future(
            client.post("/auth/login", json={"username": "alice", "password": PASSWORD})
        )
        await queued()
        clock.advance(timedelta(seconds=1))
        await services.accounts._users.set_password_hash(
            user_id, argon2_hash("a changed password 2"), clock.now(), revoke_sessions=True
        )
    refused = await in_flight
    assert refused.status_code == 401
    assert refused.json()["code"] == "invalid_credentials"
    async with services.db.read() as conn:
        live = (
            await conn.execute(
                sa.select(sa.func.count())
                .select_from(sessions)
                .where(sessions.c.user_id == user_id, sessions.c.revoked_at.is_(None))
            )
        ).scalar_one()
    assert live == 0
    await login(client, "alice", password="a changed password 2")


async def test_two_registrations_of_one_name_at_once_make_one_account(
    client: httpx.AsyncClient, services: Services
) -> None:
    """Ten concurrent registrations of one username: one 201, nine 409, one row."""
    responses = await asyncio.gather(
        *(
            client.post("/auth/register", json={"username": "racer", "password": PASSWORD})
            for _ in range(10)
        )
    )
    codes = sorted(r.status_code for r in responses)
    assert codes == [201] + [409] * 9
    async with services.db.read() as conn:
        count = (
            await conn.execute(
                sa.select(sa.func.count()).where(users.c.username_canonical == "racer")
            )
        ).scalar_one()
    assert count == 1


async def test_me_returns_the_callers_profile(client: httpx.AsyncClient) -> None:
    """GET /users/me answers the user behind the token."""
    pair = await signup(client, "frank")
    response = await client.get("/users/me", headers=bearer(pair))
    assert response.status_code == 200
    assert response.json()["username"] == "frank"


async def test_patch_me_sets_and_clears_the_email(client: httpx.AsyncClient) -> None:
    """PATCH sets an email, and `email: null` removes it (each with the current password);
    omitted fields stay."""
    pair = await signup(client)
    set_response = await client.patch(
        "/users/me",
        json={"email": "a@example.org", "current_password": PASSWORD},
        headers=bearer(pair),
    )
    assert set_response.status_code == 200
    assert set_response.json()["email"] == "a@example.org"
    unchanged = await client.patch("/users/me", json={}, headers=bearer(pair))
    assert unchanged.json()["email"] == "a@example.org"
    cleared = await client.patch(
        "/users/me", json={"email": None, "current_password": PASSWORD}, headers=bearer(pair)
    )
    assert cleared.json()["email"] is None


async def test_patch_me_refuses_fields_a_user_may_not_change(client: httpx.AsyncClient) -> None:
    """Roles and the active flag cannot be set through /users/me: 422."""
    pair = await signup(client)
    response = await client.patch("/users/me", json={"roles": ["admin"]}, headers=bearer(pair))
    assert response.status_code == 422
    me = await client.get("/users/me", headers=bearer(pair))
    assert me.json()["roles"] == ["user"]


async def test_change_password_needs_the_current_password(client: httpx.AsyncClient) -> None:
    """A wrong current password gets 401 and leaves the password unchanged."""
    pair = await signup(client)
    response = await client.post(
        "/users/me/password",
        json={"current_password": "not my password", "new_password": "another good one"},
        headers=bearer(pair),
    )
    assert response.status_code == 401
    assert response.json()["code"] == "invalid_credentials"
    await login(client)


async def test_change_password_ends_other_sessions_and_keeps_this_one(
    client: httpx.AsyncClient,
) -> None:
    """After a change, other sessions' tokens fail, this session works, the new password logs in."""
    here, other = await on_devices(client, "laptop", "phone")
    response = await client.post(
        "/users/me/password",
        json={"current_password": PASSWORD, "new_password": "a brand new secret"},
        headers=bearer(here),
    )
    assert response.status_code == 204
    assert (await client.get("/users/me", headers=bearer(other))).status_code == 401
    refreshed = await client.post("/auth/refresh", json={"refresh_token": other["refresh_token"]})
    assert refreshed.status_code == 401
    assert (await client.get("/users/me", headers=bearer(here))).status_code == 200
    await login(client, password="a brand new secret")
    old = await client.post("/auth/login", json={"username": "alice", "password": PASSWORD})
    assert old.status_code == 401


async def test_change_password_applies_the_policy_to_the_new_password(
    client: httpx.AsyncClient,
) -> None:
    """A weak new password gets 422 weak_password."""
    pair = await signup(client)
    response = await client.post(
        "/users/me/password",
        json={"current_password": PASSWORD, "new_password": "12345678"},
        headers=bearer(pair),
    )
    assert response.status_code == 422
    assert response.json()["code"] == "weak_password"
