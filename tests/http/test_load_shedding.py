"""Load shedding: when every place in the hash queue is taken, password routes answer 503
overloaded with Retry-After at once, and the cheap routes keep answering."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest
from prometheus_client import REGISTRY

from gatehouse.server.accounts.passwords import PasswordHasher
from gatehouse.server.clock import ManualClock
from gatehouse.server.config import Settings
from gatehouse.server.errors import OverloadedError
from gatehouse.server.sessions.models import ClientInfo
from gatehouse.server.wiring import Services, build_services
from tests.conftest import make_settings, truncate_all
from tests.http.helpers import PASSWORD, bearer

# One hashing thread and one waiting place: two places in all.
CAPACITY = 2


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return make_settings(database_url, tmp_path, hash_concurrency=1, hash_queue_max=1)


@pytest.fixture
async def services(settings: Settings, clock: ManualClock) -> AsyncIterator[Services]:
    built = build_services(settings, clock=clock)
    await truncate_all(built.db)
    try:
        yield built
    finally:
        await built.close()


@pytest.fixture
async def tokens(services: Services) -> dict[str, str]:
    """An admin ("root", PASSWORD) and a token pair of its, made before the queue fills."""
    return await admin_tokens(services)


@pytest.fixture
def full(services: Services, tokens: dict[str, str]) -> Iterator[ExitStack]:
    """Every place of the hash queue taken (as by logins in progress) until the test ends."""
    with ExitStack() as places:
        for _ in range(CAPACITY):
            places.enter_context(services.hasher.reserve())
        yield places


async def admin_tokens(services: Services) -> dict[str, str]:
    admin = await services.admin.create_user(
        "root", PASSWORD, email=None, roles=frozenset({"admin", "user"})
    )
    pair = await services.sessions.open(admin, ClientInfo())
    return {"access_token": pair.access_token, "refresh_token": pair.refresh_token}


def depth() -> float:
    return REGISTRY.get_sample_value("gatehouse_hash_queue_depth") or 0.0


async def test_a_full_hash_queue_answers_503_overloaded_on_password_routes(
    client: httpx.AsyncClient, tokens: dict[str, str], full: ExitStack
) -> None:
    """Login, cookie login, the OAuth password grant, registration and a password change
    answer 503 overloaded with Retry-After: 1 while the queue is full."""
    pair = tokens
    body = {"username": "root", "password": PASSWORD}
    answers = [
        await client.post("/auth/login", json=body),
        await client.post("/auth/session", json=body),
        await client.post("/auth/register", json={"username": "new", "password": PASSWORD}),
        await client.post(
            "/users/me/password",
            json={"current_password": PASSWORD, "new_password": "a brand new secret"},
            headers=bearer(pair),
        ),
    ]
    for answer in answers:
        assert answer.status_code == 503, answer.text
        assert answer.json()["code"] == "overloaded"
        assert answer.headers["retry-after"] == "1"
    oauth = await client.post("/oauth/token", data={"grant_type": "password", **body})
    assert oauth.status_code == 503
    assert oauth.headers["retry-after"] == "1"


async def test_cheap_routes_answer_while_the_hash_queue_is_full(
    client: httpx.AsyncClient, tokens: dict[str, str], full: ExitStack
) -> None:
    """/healthz, JWKS, a bearer /users/me, refresh and introspection need no hash: 200."""
    pair = tokens
    assert (await client.get("/healthz")).status_code == 200
    assert (await client.get("/.well-known/jwks.json")).status_code == 200
    assert (await client.get("/users/me", headers=bearer(pair))).status_code == 200
    introspected = await client.post(
        "/oauth/introspect", data={"token": pair["access_token"]}, headers=bearer(pair)
    )
    assert introspected.json()["active"] is True
    refreshed = await client.post("/auth/refresh", json={"refresh_token": pair["refresh_token"]})
    assert refreshed.status_code == 200


async def test_a_login_needs_one_place_only(client: httpx.AsyncClient, services: Services) -> None:
    """With one of the two places taken, a login (which may also upgrade its hash) succeeds:
    it reserves its place once, not once per hash."""
    await admin_tokens(services)
    with services.hasher.reserve():
        response = await client.post("/auth/login", json={"username": "root", "password": PASSWORD})
    assert response.status_code == 200


async def test_places_are_given_back_after_shedding(
    client: httpx.AsyncClient, services: Services
) -> None:
    """Once the queue drains, logins are served again and no place stays taken."""
    await admin_tokens(services)
    body = {"username": "root", "password": PASSWORD}
    with ExitStack() as places:
        for _ in range(CAPACITY):
            places.enter_context(services.hasher.reserve())
        assert (await client.post("/auth/login", json=body)).status_code == 503
    assert (await client.post("/auth/login", json=body)).status_code == 200
    assert (await client.post("/auth/login", json={**body, "password": "wrong"})).status_code == 401
    assert services.hasher.taken == 0


async def test_a_login_whose_client_goes_away_gives_its_place_back(
    client: httpx.AsyncClient, services: Services
) -> None:
    """A login cancelled while its hash waits for the (held) hashing thread frees its place
    and the depth gauge: nothing leaks, and the next login is served."""
    await admin_tokens(services)
    body = {"username": "root", "password": PASSWORD}
    hasher = services.hasher
    release = threading.Event()
    before = depth()
    blocker = asyncio.get_running_loop().run_in_executor(hasher._pool, release.wait)
    try:
        gone = asyncio.ensure_future(client.post("/auth/login", json=body))
        for _ in range(5000):  # until the request holds its place (at most 5 s)
            if hasher.taken:
                break
            await asyncio.sleep(0.001)
        assert depth() == before + 1
        gone.cancel()
        with pytest.raises(asyncio.CancelledError):
            await gone
        assert hasher.taken == 0
        assert depth() == before
    finally:
        release.set()
        await blocker
    assert (await client.post("/auth/login", json=body)).status_code == 200


async def test_the_depth_gauge_counts_places_taken(services: Services) -> None:
    """gatehouse_hash_queue_depth rises by one per place taken and falls when it is freed."""
    before = depth()
    with services.hasher.reserve(), services.hasher.reserve():
        assert depth() == before + 2
    assert depth() == before


async def test_a_burst_past_the_queue_is_shed_at_once_not_queued() -> None:
    """With the one hashing thread busy and the one waiting place taken, further hashes are
    refused at once (OverloadedError) instead of waiting behind them."""
    hasher = PasswordHasher("test", concurrency=1, queue_max=1)
    release = threading.Event()
    try:
        stored = await hasher.hash("a password to check")
        loop = asyncio.get_running_loop()
        with hasher.reserve():
            # The hashing thread is held here until the test lets it go.
            blocker = loop.run_in_executor(hasher._pool, release.wait)
            waiting = asyncio.ensure_future(hasher.verify("a password to check", stored))
            await asyncio.sleep(0)
            assert hasher.taken == CAPACITY
            with pytest.raises(OverloadedError):
                await hasher.verify("a password to check", stored)
            release.set()
            await blocker
            assert await waiting == (True, None)
    finally:
        release.set()
        hasher.close()


async def test_many_logins_at_once_are_served_or_shed_nothing_else(
    client: httpx.AsyncClient, services: Services
) -> None:
    """Thirty logins at once on two places: each answers 200 or 503 overloaded."""
    await admin_tokens(services)
    body = {"username": "root", "password": PASSWORD}
    answers = await asyncio.gather(*(client.post("/auth/login", json=body) for _ in range(30)))
    statuses = {a.status_code for a in answers}
    assert statuses <= {200, 503}
    assert 200 in statuses
    assert all(a.json()["code"] == "overloaded" for a in answers if a.status_code == 503)
