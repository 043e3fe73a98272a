"""Per-account lockout and per-address limits, through the real app: every credential path,
IPv6 /64 buckets, forwarding headers, parallel bursts, registrations, and Redis down."""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis.asyncio as redis
from prometheus_client import REGISTRY

from gatehouse.server.clock import ManualClock
from gatehouse.server.http.app import create_app
from gatehouse.server.sessions.models import ClientInfo
from gatehouse.server.wiring import Services, build_services
from tests.conftest import make_settings, truncate_all
from tests.http.devices import create_license, fp, register_device
from tests.http.helpers import PASSWORD, admin_pair, bearer

HOME = "203.0.113.7"
OTHER = "198.51.100.20"
REDIS_URL = os.environ.get("GATEHOUSE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
LOCKOUT = {
    "lockout_threshold": 3,
    "lockout_base": timedelta(seconds=60),
    "lockout_max": timedelta(seconds=240),
    "ip_failure_limit": 1000,
}
PER_IP = {"lockout_threshold": 1000, "ip_failure_limit": 5}


@dataclass
class Served:
    services: Services
    stack: AsyncExitStack
    transports: dict[str, httpx.AsyncClient] = field(default_factory=dict)

    async def client(self, ip: str = HOME) -> httpx.AsyncClient:
        """A client whose requests come from `ip` (the socket peer the app sees)."""
        if ip not in self.transports:
            app = self.services_app
            transport = httpx.ASGITransport(app=app, client=(ip, 50000))
            self.transports[ip] = await self.stack.enter_async_context(
                httpx.AsyncClient(transport=transport, base_url="http://testserver")
            )
        return self.transports[ip]

    services_app: Any = None


Serve = Callable[..., Awaitable[Served]]


@pytest.fixture
async def serve(database_url: str, tmp_path: Path, clock: ManualClock) -> AsyncIterator[Serve]:
    """Start the app with settings overrides (`redis=True`: limits in Redis under a fresh
    prefix); clients per address come from the result."""
    stacks: list[AsyncExitStack] = []
    prefixes: list[str] = []

    async def start(*, redis_store: bool = False, **overrides: Any) -> Served:
        if redis_store:
            prefix = f"gatehouse-test:{secrets.token_hex(8)}:"
            prefixes.append(prefix)
            overrides = {"redis_url": REDIS_URL, "redis_key_prefix": prefix, **overrides}
        settings = make_settings(database_url, tmp_path, **overrides)
        services = build_services(settings, clock=clock)
        stack = AsyncExitStack()
        stacks.append(stack)
        stack.push_async_callback(services.close)
        await truncate_all(services.db)
        app = create_app(services=services)
        await stack.enter_async_context(app.router.lifespan_context(app))
        served = Served(services, stack)
        served.services_app = app
        return served

    yield start
    for stack in reversed(stacks):
        await stack.aclose()
    if prefixes:
        client = redis.Redis.from_url(REDIS_URL)
        for prefix in prefixes:
            keys = [key async for key in client.scan_iter(match=f"{prefix}*")]
            if keys:
                await client.delete(*keys)
        await client.aclose()


async def login(client: httpx.AsyncClient, username: str, password: str) -> httpx.Response:
    return await client.post("/auth/login", json={"username": username, "password": password})


async def make_user(served: Served, username: str = "alice") -> None:
    await served.services.admin.create_user(
        username, PASSWORD, email=None, roles=frozenset({"user"})
    )


def problem(response: httpx.Response) -> tuple[int, str | None, str | None]:
    """Status, error code and Retry-After of an answer."""
    body = response.json()
    code = body.get("code") or body.get("error")
    return response.status_code, code, response.headers.get("retry-after")


# --- per-account lockout ---


@pytest.mark.parametrize("redis_store", [False, True], ids=["memory", "redis"])
async def test_the_failure_reaching_the_threshold_is_401_and_later_attempts_429(
    serve: Serve, redis_store: bool
) -> None:
    """Three wrong passwords answer 401; the fourth, and then the right password, 429
    account_locked with Retry-After 60."""
    served = await serve(redis_store=redis_store, **LOCKOUT)
    await make_user(served)
    client = await served.client()
    statuses = [(await login(client, "alice", "wrong password")).status_code for _ in range(3)]
    assert statuses == [401, 401, 401]
    wrong = await login(client, "alice", "wrong password")
    right = await login(client, "alice", PASSWORD)
    assert problem(wrong) == (429, "account_locked", "60")
    assert problem(right) == (429, "account_locked", "60")
    assert wrong.json() == right.json()


async def test_retry_after_counts_down_and_the_lock_ends(serve: Serve, clock: ManualClock) -> None:
    """Retry-After is the time left of the lock in whole seconds; after it, the right
    password logs in."""
    served = await serve(**LOCKOUT)
    await make_user(served)
    client = await served.client()
    for _ in range(3):
        await login(client, "alice", "wrong password")
    clock.advance(timedelta(seconds=59, milliseconds=500))
    assert problem(await login(client, "alice", PASSWORD)) == (429, "account_locked", "1")
    clock.advance(timedelta(seconds=1))
    assert (await login(client, "alice", PASSWORD)).status_code == 200


async def test_each_further_lock_doubles_up_to_the_max(serve: Serve, clock: ManualClock) -> None:
    """Locks in a row last 60, 120, 240, 240 seconds (lockout_max 240)."""
    served = await serve(**LOCKOUT)
    await make_user(served)
    client = await served.client()
    waits = []
    for _ in range(4):
        for _ in range(3):
            assert (await login(client, "alice", "wrong password")).status_code == 401
        refused = await login(client, "alice", "wrong password")
        waits.append(problem(refused)[2])
        clock.advance(timedelta(seconds=int(refused.headers["retry-after"])))
    assert waits == ["60", "120", "240", "240"]


async def test_a_success_clears_the_failure_count(serve: Serve) -> None:
    """Two failures, a success, two more failures: nothing locks (only failures in a row
    since the last success count)."""
    served = await serve(**LOCKOUT)
    await make_user(served)
    client = await served.client()
    answers = []
    for password in ("x-wrong-1", "x-wrong-2", PASSWORD, "x-wrong-3", "x-wrong-4", PASSWORD):
        answers.append((await login(client, "alice", password)).status_code)
    assert answers == [401, 401, 200, 401, 401, 200]


async def test_a_success_resets_the_doubling(serve: Serve, clock: ManualClock) -> None:
    """After a lock and a successful login, the next lock is the base 60 s again."""
    served = await serve(**LOCKOUT)
    await make_user(served)
    client = await served.client()
    for _ in range(3):
        await login(client, "alice", "wrong password")
    clock.advance(timedelta(seconds=60))
    assert (await login(client, "alice", PASSWORD)).status_code == 200
    for _ in range(3):
        await login(client, "alice", "wrong password")
    assert problem(await login(client, "alice", PASSWORD))[2] == "60"


async def test_case_width_and_unicode_variants_share_one_count(serve: Serve) -> None:
    """Failures as alice, ALICE and full-width Alice lock the one name `alice`."""
    served = await serve(**LOCKOUT)
    await make_user(served, "Alice")
    client = await served.client()
    for variant in ("alice", "ALICE", "\uff21\uff4c\uff49\uff43\uff45"):
        assert (await login(client, variant, "wrong password")).status_code == 401
    assert problem(await login(client, "aLiCe", PASSWORD))[:2] == (429, "account_locked")


async def test_a_name_that_does_not_exist_locks_and_answers_alike(serve: Serve) -> None:
    """An unknown name answers 401 three times, then 429 with the same body and Retry-After
    as a locked existing name."""
    served = await serve(**LOCKOUT)
    await make_user(served)
    client = await served.client()
    for name in ("alice", "nobody"):
        for _ in range(3):
            assert (await login(client, name, "wrong password")).status_code == 401
    known = await login(client, "alice", PASSWORD)
    unknown = await login(client, "nobody", PASSWORD)
    assert problem(known) == problem(unknown) == (429, "account_locked", "60")
    assert known.json() == unknown.json()


@pytest.mark.parametrize("redis_store", [False, True], ids=["memory", "redis"])
async def test_parallel_wrong_logins_lock_exactly_at_the_threshold(
    serve: Serve, redis_store: bool
) -> None:
    """Twelve wrong passwords at once: exactly three answer 401, the other nine 429."""
    served = await serve(redis_store=redis_store, **LOCKOUT)
    await make_user(served)
    client = await served.client()
    answers = await asyncio.gather(*(login(client, "alice", "wrong") for _ in range(12)))
    statuses = sorted(r.status_code for r in answers)
    assert statuses == [401] * 3 + [429] * 9
    assert {problem(r)[1] for r in answers if r.status_code == 429} == {"account_locked"}


async def test_every_password_path_shares_the_lockout(serve: Serve) -> None:
    """A wrong password at /auth/login, /auth/session and the OAuth password grant count
    toward one lock, which then refuses all three (OAuth with its own body shape)."""
    served = await serve(**LOCKOUT)
    await make_user(served)
    client = await served.client()
    form = {"grant_type": "password", "username": "alice", "password": "wrong"}
    assert (await login(client, "alice", "wrong")).status_code == 401
    assert (
        await client.post("/auth/session", json={"username": "alice", "password": "wrong"})
    ).status_code == 401
    assert (await client.post("/oauth/token", data=form)).status_code in (400, 401)
    right = {"username": "alice", "password": PASSWORD}
    assert problem(await login(client, "alice", PASSWORD))[:2] == (429, "account_locked")
    assert problem(await client.post("/auth/session", json=right))[:2] == (429, "account_locked")
    oauth = await client.post("/oauth/token", data={"grant_type": "password", **right})
    assert oauth.status_code == 429
    assert oauth.json()["error"] == "account_locked"
    assert oauth.headers["retry-after"] == "60"


async def test_a_wrong_current_password_counts_toward_the_lockout(serve: Serve) -> None:
    """/users/me/password with a wrong current password counts for the name: three of them
    lock it, and then both login and the password change answer 429."""
    served = await serve(**LOCKOUT)
    await make_user(served)
    client = await served.client()
    pair = (await login(client, "alice", PASSWORD)).json()
    change = {"current_password": "wrong password", "new_password": "a brand new secret"}
    for _ in range(3):
        response = await client.post("/users/me/password", json=change, headers=bearer(pair))
        assert response.status_code == 401
    right = {"current_password": PASSWORD, "new_password": "a brand new secret"}
    refused = await client.post("/users/me/password", json=right, headers=bearer(pair))
    assert problem(refused)[:2] == (429, "account_locked")
    assert problem(await login(client, "alice", PASSWORD))[:2] == (429, "account_locked")


async def test_a_password_change_that_a_parallel_lock_overtakes_answers_what_it_did(
    serve: Serve, clock: ManualClock
) -> None:
    """A right current password checked while a parallel attempt locks the name: the change
    is made and answers 204 (not a 429 that would hide it); the lock stays in place."""
    served = await serve(hash_concurrency=1, **LOCKOUT)
    await make_user(served)
    client = await served.client()
    pair = (await login(client, "alice", PASSWORD)).json()
    hasher = served.services.hasher
    release = threading.Event()
    # The one hashing thread is held, so the change waits for its hash after its checks.
    blocker = asyncio.get_running_loop().run_in_executor(hasher._pool, release.wait)
    right = {"current_password": PASSWORD, "new_password": "a brand new secret"}
    change = asyncio.ensure_future(
        client.post("/users/me/password", json=right, headers=bearer(pair))
    )
    try:
        for _ in range(5000):  # until the request holds its place (at most 5 s)
            if hasher.taken:
                break
            await asyncio.sleep(0.001)
        for _ in range(3):
            await served.services.guard.account_failed("alice")
    finally:
        release.set()
        await blocker
    assert (await change).status_code == 204
    assert problem(await login(client, "alice", PASSWORD))[:2] == (429, "account_locked")
    clock.advance(timedelta(seconds=60))
    assert (await login(client, "alice", "a brand new secret")).status_code == 200


async def test_a_lockout_does_not_refuse_bearer_tokens(serve: Serve) -> None:
    """A locked name stops password checks only: its live access tokens keep working."""
    served = await serve(**LOCKOUT)
    await make_user(served)
    client = await served.client()
    pair = (await login(client, "alice", PASSWORD)).json()
    for _ in range(4):
        await login(client, "alice", "wrong password")
    assert (await client.get("/users/me", headers=bearer(pair))).status_code == 200


# --- per-address limits ---


@dataclass
class Paths:
    """What a caller needs to try every credential path: a user, its token pair and API
    key, a license key and a registered fingerprint."""

    pair: dict[str, Any]
    api_key: str
    client_id: str
    client_secret: str
    license_key: str
    fingerprint: str


async def prepare(served: Served) -> Paths:
    client = await served.client(OTHER)
    admin = await admin_pair(client, served.services)
    await make_user(served)
    pair = (await login(client, "alice", PASSWORD)).json()
    created = await client.post("/users/me/api-keys", json={"name": "ci"}, headers=bearer(pair))
    key = created.json()["key"]
    license_ = await create_license(client, admin)
    await register_device(client, admin, fp("known"))
    client_id, _, secret = key.rpartition("_")
    return Paths(pair, key, client_id, secret, license_["license_key"], fp("known"))


UNKNOWN_KEY = "ghk_" + "A" * 16 + "_" + "b" * 32
WRONG: dict[str, Callable[[httpx.AsyncClient, Paths], Awaitable[httpx.Response]]] = {
    "login": lambda c, p: c.post(
        "/auth/login", json={"username": f"u{secrets.token_hex(4)}", "password": "wrong"}
    ),
    "cookie-session": lambda c, p: c.post(
        "/auth/session", json={"username": "alice", "password": "wrong"}
    ),
    "oauth-password": lambda c, p: c.post(
        "/oauth/token", data={"grant_type": "password", "username": "alice", "password": "no"}
    ),
    "oauth-refresh": lambda c, p: c.post(
        "/oauth/token", data={"grant_type": "refresh_token", "refresh_token": "ghr_forged"}
    ),
    "auth-refresh": lambda c, p: c.post("/auth/refresh", json={"refresh_token": "ghr_forged"}),
    "client-credentials": lambda c, p: c.post(
        "/oauth/token",
        data={"grant_type": "client_credentials"},
        auth=(p.client_id, "x" * 32),
    ),
    "api-key-header": lambda c, p: c.get("/users/me", headers={"X-API-Key": UNKNOWN_KEY}),
    "api-key-bearer": lambda c, p: c.get("/users/me", headers=bearer(UNKNOWN_KEY)),
    "introspection-basic": lambda c, p: c.post(
        "/oauth/introspect", data={"token": "x"}, auth=(p.client_id, "y" * 32)
    ),
    "change-password": lambda c, p: c.post(
        "/users/me/password",
        json={"current_password": "wrong", "new_password": "a brand new secret"},
        headers=bearer(p.pair),
    ),
    "device-verify": lambda c, p: c.post("/devices/verify", json={"fingerprint": fp("nope")}),
    "device-activate": lambda c, p: c.post(
        "/devices/activate", json={"license_key": "GH-wrong", "fingerprint": fp("nope")}
    ),
    "device-deactivate": lambda c, p: c.post(
        "/devices/deactivate", json={"license_key": "GH-wrong", "fingerprint": fp("nope")}
    ),
}
RIGHT: dict[str, Callable[[httpx.AsyncClient, Paths], Awaitable[httpx.Response]]] = {
    "login": lambda c, p: c.post("/auth/login", json={"username": "alice", "password": PASSWORD}),
    "cookie-session": lambda c, p: c.post(
        "/auth/session", json={"username": "alice", "password": PASSWORD}
    ),
    "oauth-password": lambda c, p: c.post(
        "/oauth/token",
        data={"grant_type": "password", "username": "alice", "password": PASSWORD},
    ),
    "oauth-refresh": lambda c, p: c.post(
        "/oauth/token",
        data={"grant_type": "refresh_token", "refresh_token": p.pair["refresh_token"]},
    ),
    "auth-refresh": lambda c, p: c.post(
        "/auth/refresh", json={"refresh_token": p.pair["refresh_token"]}
    ),
    "client-credentials": lambda c, p: c.post(
        "/oauth/token",
        data={"grant_type": "client_credentials"},
        auth=(p.client_id, p.client_secret),
    ),
    "api-key-header": lambda c, p: c.get("/users/me", headers={"X-API-Key": p.api_key}),
    "api-key-bearer": lambda c, p: c.get("/users/me", headers=bearer(p.api_key)),
    "change-password": lambda c, p: c.post(
        "/users/me/password",
        json={"current_password": PASSWORD, "new_password": "a brand new secret"},
        headers=bearer(p.pair),
    ),
    "device-verify": lambda c, p: c.post("/devices/verify", json={"fingerprint": p.fingerprint}),
    "device-activate": lambda c, p: c.post(
        "/devices/activate", json={"license_key": p.license_key, "fingerprint": fp("new")}
    ),
}


@pytest.mark.parametrize("path", sorted(WRONG))
async def test_failures_on_each_credential_path_count_toward_the_address(
    serve: Serve, path: str
) -> None:
    """Five failures on one path answer that path's own error; the sixth answers 429
    rate_limited with Retry-After 600, and so does a right login from that address, while
    another address logs in."""
    served = await serve(**PER_IP)
    paths = await prepare(served)
    client = await served.client()
    for _ in range(5):
        answer = await WRONG[path](client, paths)
        assert answer.status_code in (400, 401), answer.text
    assert problem(await WRONG[path](client, paths)) == (429, "rate_limited", "600")
    assert problem(await RIGHT["login"](client, paths)) == (429, "rate_limited", "600")
    other = await served.client(OTHER)
    assert (await RIGHT["login"](other, paths)).status_code == 200


async def test_an_address_past_its_limit_is_refused_on_every_credential_path(
    serve: Serve,
) -> None:
    """After five failed logins, every credential path refuses the address with 429, even
    with right credentials; bearer access tokens (no limit store) keep working."""
    served = await serve(**PER_IP)
    paths = await prepare(served)
    client = await served.client()
    pair = (await login(client, "alice", PASSWORD)).json()
    for _ in range(5):
        await WRONG["login"](client, paths)
    for name, call in RIGHT.items():
        assert problem(await call(client, paths))[:2] == (429, "rate_limited"), name
    assert (await client.get("/users/me", headers=bearer(pair))).status_code == 200


async def test_the_address_limit_ends_with_its_window(serve: Serve, clock: ManualClock) -> None:
    """Ten minutes after the first failure the address may try again."""
    served = await serve(**PER_IP)
    paths = await prepare(served)
    client = await served.client()
    for _ in range(5):
        await WRONG["login"](client, paths)
    clock.advance(timedelta(minutes=10))
    assert (await RIGHT["login"](client, paths)).status_code == 200


async def test_ipv6_addresses_count_by_their_64(serve: Serve) -> None:
    """Failures from five addresses of one /64 block the sixth address in it, and not an
    address of the neighbouring /64."""
    served = await serve(**PER_IP)
    paths = await prepare(served)
    for host in range(1, 6):
        await WRONG["login"](await served.client(f"2001:db8:1:2::{host}"), paths)
    same = await served.client("2001:db8:1:2:ffff:ffff:ffff:ffff")
    assert problem(await RIGHT["login"](same, paths))[:2] == (429, "rate_limited")
    neighbour = await served.client("2001:db8:1:3::1")
    assert (await RIGHT["login"](neighbour, paths)).status_code == 200


async def test_ipv4_mapped_ipv6_counts_as_its_ipv4_address(serve: Serve) -> None:
    """Failures from ::ffff:192.0.2.9 and from 192.0.2.9 are one address's."""
    served = await serve(**PER_IP)
    paths = await prepare(served)
    for _ in range(3):
        await WRONG["login"](await served.client("::ffff:192.0.2.9"), paths)
    for _ in range(2):
        await WRONG["login"](await served.client("192.0.2.9"), paths)
    refused = await RIGHT["login"](await served.client("192.0.2.9"), paths)
    assert problem(refused)[:2] == (429, "rate_limited")


async def test_spoofed_forwarding_headers_do_not_get_around_the_limit(serve: Serve) -> None:
    """With no trusted proxy, a fresh X-Forwarded-For / Forwarded on each attempt changes
    nothing: the sixth attempt is refused."""
    served = await serve(**PER_IP)
    await prepare(served)
    client = await served.client()
    for n in range(5):
        await client.post(
            "/auth/login",
            json={"username": "alice", "password": "wrong"},
            headers={"X-Forwarded-For": f"10.0.0.{n}", "Forwarded": f"for=10.1.0.{n}"},
        )
    refused = await client.post(
        "/auth/login",
        json={"username": "alice", "password": PASSWORD},
        headers={"X-Forwarded-For": "10.9.9.9"},
    )
    assert problem(refused)[:2] == (429, "rate_limited")


async def test_behind_a_trusted_proxy_clients_count_apart_and_spoofing_left_is_ignored(
    serve: Serve,
) -> None:
    """Through a trusted proxy, the address it appends counts: one client's failures block
    it (whatever it prepends itself) and not another client of the same proxy."""
    served = await serve(trusted_proxies="192.0.2.1", **PER_IP)
    await prepare(served)
    proxy = await served.client("192.0.2.1")
    for n in range(5):
        await proxy.post(
            "/auth/login",
            json={"username": "alice", "password": "wrong"},
            headers={"X-Forwarded-For": f"10.0.0.{n}, 198.51.100.77"},
        )
    right = {"username": "alice", "password": PASSWORD}
    blocked = await proxy.post(
        "/auth/login", json=right, headers={"X-Forwarded-For": "10.5.5.5, 198.51.100.77"}
    )
    assert problem(blocked)[:2] == (429, "rate_limited")
    other = await proxy.post(
        "/auth/login", json=right, headers={"X-Forwarded-For": "198.51.100.78"}
    )
    assert other.status_code == 200


@pytest.mark.parametrize("redis_store", [False, True], ids=["memory", "redis"])
async def test_parallel_failures_from_one_address_are_counted_exactly(
    serve: Serve, redis_store: bool
) -> None:
    """Fifteen wrong logins (different names) at once against a limit of five: exactly
    five answer 401, ten 429 rate_limited."""
    served = await serve(redis_store=redis_store, **PER_IP)
    paths = await prepare(served)
    client = await served.client()
    answers = await asyncio.gather(*(WRONG["login"](client, paths) for _ in range(15)))
    assert sorted(r.status_code for r in answers) == [401] * 5 + [429] * 10
    assert {problem(r)[1] for r in answers if r.status_code == 429} == {"rate_limited"}


async def test_parallel_bad_api_keys_are_counted_exactly(serve: Serve) -> None:
    """Fifteen unknown API keys at once against a limit of five: five 401s, ten 429s."""
    served = await serve(**PER_IP)
    paths = await prepare(served)
    client = await served.client()
    answers = await asyncio.gather(*(WRONG["api-key-header"](client, paths) for _ in range(15)))
    assert sorted(r.status_code for r in answers) == [401] * 5 + [429] * 10


# --- registrations ---


async def test_registrations_are_limited_per_address_taken_names_included(
    serve: Serve,
) -> None:
    """Three registration attempts (a new name, a taken one, a weak password) use up a
    limit of three: the fourth is 429 rate_limited; another address still registers."""
    served = await serve(register_ip_limit=3)
    client = await served.client()
    attempts = [
        {"username": "alice", "password": PASSWORD},
        {"username": "ALICE", "password": PASSWORD},
        {"username": "bob", "password": "password"},
    ]
    statuses = [(await client.post("/auth/register", json=a)).status_code for a in attempts]
    assert statuses == [201, 409, 422]
    refused = await client.post("/auth/register", json={"username": "carol", "password": PASSWORD})
    assert problem(refused) == (429, "rate_limited", "3600")
    other = await served.client(OTHER)
    created = await other.post("/auth/register", json={"username": "carol", "password": PASSWORD})
    assert created.status_code == 201


async def test_an_address_refused_for_its_failures_cannot_register_either(
    serve: Serve,
) -> None:
    """Registration is a credential path: once an address has used up its failed attempts
    (five wrong logins), /auth/register from it answers 429 rate_limited without creating
    the account; another address registers the same name."""
    served = await serve(**PER_IP)
    client = await served.client()
    for _ in range(5):
        await client.post("/auth/login", json={"username": "nobody", "password": "wrong"})
    refused = await client.post("/auth/register", json={"username": "carol", "password": PASSWORD})
    assert problem(refused)[:2] == (429, "rate_limited")
    other = await served.client(OTHER)
    created = await other.post("/auth/register", json={"username": "carol", "password": PASSWORD})
    assert created.status_code == 201


# --- the limit store down ---


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def test_redis_down_fails_credential_paths_closed_and_other_routes_answer(
    serve: Serve,
) -> None:
    """With Redis unreachable, login, refresh, API keys, device verification and
    registration answer 503 limits_unavailable with Retry-After; /healthz, JWKS, a bearer
    /users/me, an admin read and introspection with a bearer token answer 200."""
    served = await serve(redis_url=f"redis://127.0.0.1:{closed_port()}/0")
    services = served.services
    admin = await services.admin.create_user(
        "root", PASSWORD, email=None, roles=frozenset({"admin", "user"})
    )
    tokens = await services.sessions.open(admin, ClientInfo())
    pair = {"access_token": tokens.access_token, "refresh_token": tokens.refresh_token}
    client = await served.client()

    down = [
        await login(client, "root", PASSWORD),
        await client.post("/auth/refresh", json={"refresh_token": pair["refresh_token"]}),
        await client.get("/users/me", headers={"X-API-Key": UNKNOWN_KEY}),
        await client.post("/devices/verify", json={"fingerprint": fp("m")}),
        await client.post("/auth/register", json={"username": "new", "password": PASSWORD}),
    ]
    for answer in down:
        assert problem(answer)[:2] == (503, "limits_unavailable"), answer.text
        assert int(answer.headers["retry-after"]) >= 1
    oauth = await client.post(
        "/oauth/token", data={"grant_type": "password", "username": "root", "password": PASSWORD}
    )
    assert oauth.status_code == 503
    assert oauth.json()["error"] == "temporarily_unavailable"

    assert (await client.get("/healthz")).status_code == 200
    assert (await client.get("/.well-known/jwks.json")).status_code == 200
    assert (await client.get("/users/me", headers=bearer(pair))).status_code == 200
    assert (await client.get("/admin/users", headers=bearer(pair))).status_code == 200
    introspected = await client.post(
        "/oauth/introspect", data={"token": pair["access_token"]}, headers=bearer(pair)
    )
    assert introspected.status_code == 200
    assert introspected.json()["active"] is True


# --- the audit trail and metrics of logins ---


async def events(services: Services, kind: str) -> list[Any]:
    await services.audit_recorder.flush()
    page = await services.audit.search(type=kind, limit=200)
    return [stored.event for stored in reversed(page.items)]


async def test_failed_logins_a_lock_and_a_success_are_audited(
    serve: Serve, clock: ManualClock
) -> None:
    """Three wrong passwords record three login.failed (subject the canonical name, reason,
    address) and one account.locked; attempts refused by the lock record nothing; the
    later success records login.succeeded with the user as subject."""
    served = await serve(**LOCKOUT)
    await make_user(served, "Alice")
    client = await served.client()
    for _ in range(3):
        await login(client, "ALICE", "wrong password")
    await login(client, "alice", "wrong password")
    await login(client, "nobody", "wrong password")
    clock.advance(timedelta(seconds=60))
    ok = await login(client, "alice", PASSWORD)
    assert ok.status_code == 200

    failed = await events(served.services, "login.failed")
    # One instant (the manual clock) for all: compare without order.
    assert sorted((e.subject.kind, e.subject.id, e.detail["reason"]) for e in failed) == [
        ("username", "alice", "wrong_password")
    ] * 3 + [("username", "nobody", "unknown_user")]
    assert {e.ip for e in failed} == {HOME}
    assert all(e.outcome == "failure" for e in failed)
    locked = await events(served.services, "account.locked")
    assert [(e.subject.kind, e.subject.id) for e in locked] == [("username", "alice")]
    (succeeded,) = await events(served.services, "login.succeeded")
    me = await client.get("/users/me", headers=bearer(ok.json()))
    assert (succeeded.subject.kind, succeeded.subject.id) == ("user", me.json()["id"])


async def test_a_lock_by_wrong_current_passwords_is_audited(serve: Serve) -> None:
    """Three wrong current passwords on /users/me/password lock the name and record one
    account.locked (subject the canonical name), as a lock by failed logins does."""
    served = await serve(**LOCKOUT)
    await make_user(served, "Alice")
    client = await served.client()
    pair = (await login(client, "alice", PASSWORD)).json()
    change = {"current_password": "wrong password", "new_password": "a brand new secret"}
    for _ in range(3):
        response = await client.post("/users/me/password", json=change, headers=bearer(pair))
        assert response.status_code == 401
    assert problem(await login(client, "alice", PASSWORD))[:2] == (429, "account_locked")
    locked = await events(served.services, "account.locked")
    assert [(e.subject.kind, e.subject.id, e.detail["reason"]) for e in locked] == [
        ("username", "alice", "wrong_current_password")
    ]
    assert {e.ip for e in locked} == {HOME}


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_lockouts_and_refusals_are_counted_in_metrics(serve: Serve) -> None:
    """A lock adds one to gatehouse_lockouts_total; each refused attempt one to
    gatehouse_rate_limited_total{limit="account"}; logins count by outcome."""
    served = await serve(**LOCKOUT)
    await make_user(served)
    client = await served.client()
    before = (
        sample("gatehouse_lockouts_total"),
        sample("gatehouse_rate_limited_total", limit="account"),
        sample("gatehouse_logins_total", outcome="failure"),
        sample("gatehouse_logins_total", outcome="locked"),
    )
    for _ in range(5):
        await login(client, "alice", "wrong password")
    after = (
        sample("gatehouse_lockouts_total"),
        sample("gatehouse_rate_limited_total", limit="account"),
        sample("gatehouse_logins_total", outcome="failure"),
        sample("gatehouse_logins_total", outcome="locked"),
    )
    assert [a - b for a, b in zip(after, before, strict=True)] == [1, 2, 3, 2]


async def test_an_unverified_address_refuses_the_right_password_and_counts_as_success(
    serve: Serve,
) -> None:
    """With REQUIRE_VERIFIED_EMAIL, the right password of an unverified address answers 403
    email_unverified (a wrong one still 401), and clears the failure count like a success."""
    served = await serve(require_verified_email=True, **LOCKOUT)
    await served.services.admin.create_user(
        "alice", PASSWORD, email="alice@example.com", roles=frozenset({"user"})
    )
    client = await served.client()
    answers = []
    for password in ("wrong-1", "wrong-2", PASSWORD, "wrong-3", "wrong-4", PASSWORD):
        answers.append(problem(await login(client, "alice", password))[:2])
    unverified = (403, "email_unverified")
    wrong = (401, "invalid_credentials")
    assert answers == [wrong, wrong, unverified, wrong, wrong, unverified]
