"""Cookie sessions for browsers and their CSRF protection, through the real app."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from gatehouse.server.clock import ManualClock
from gatehouse.server.http.app import create_app
from gatehouse.server.wiring import Services, build_services
from tests.conftest import make_settings
from tests.http.helpers import PASSWORD, admin_pair, bearer, login, register

ORIGIN = "https://testserver"
COOKIE = "__Host-gatehouse_session"


@pytest.fixture
async def browser(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """A client on https (the test issuer is https), keeping cookies like a browser."""
    transport = httpx.ASGITransport(app=app, client=("203.0.113.9", 50000))
    async with httpx.AsyncClient(transport=transport, base_url=ORIGIN) as c:
        yield c


async def cookie_login(browser: httpx.AsyncClient, username: str = "alice") -> dict[str, Any]:
    response = await browser.post(
        "/auth/session", json={"username": username, "password": PASSWORD, "device_name": "web"}
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def csrf(body: dict[str, Any], **extra: str) -> dict[str, str]:
    return {"X-CSRF-Token": body["csrf_token"], **extra}


async def test_cookie_login_sets_a_host_only_httponly_cookie_and_no_tokens(
    browser: httpx.AsyncClient,
) -> None:
    """The body is {csrf_token, session_id, user, expires_at}; the one cookie is
    __Host-gatehouse_session; HttpOnly; SameSite=Lax; Path=/; Secure; no Domain."""
    await register(browser)
    response = await browser.post("/auth/session", json={"username": "alice", "password": PASSWORD})
    assert response.status_code == 200
    assert set(response.json()) == {"csrf_token", "session_id", "user", "expires_at"}
    assert response.json()["user"]["username"] == "alice"
    assert response.headers["cache-control"] == "no-store"
    (cookie,) = response.headers.get_list("set-cookie")
    name, _, attributes = cookie.partition("=")
    assert name == COOKIE
    parts = {p.strip().split("=")[0].lower() for p in attributes.split(";")[1:]}
    assert {"httponly", "secure", "path", "samesite", "max-age"} <= parts
    assert "domain" not in parts
    assert "samesite=lax" in cookie.lower()
    assert "path=/" in cookie.lower()
    assert response.json()["csrf_token"] not in cookie


async def test_the_cookie_authenticates_and_is_a_listed_session(browser: httpx.AsyncClient) -> None:
    """Protected routes accept the cookie; the session list shows it as the current one."""
    await register(browser)
    body = await cookie_login(browser)
    me = await browser.get("/users/me")
    assert me.status_code == 200
    assert me.json()["username"] == "alice"
    sessions = (await browser.get("/users/me/sessions")).json()
    assert [(s["id"], s["device_name"], s["current"]) for s in sessions] == [
        (body["session_id"], "web", True)
    ]


async def test_every_login_is_a_fresh_session(browser: httpx.AsyncClient) -> None:
    """A second cookie login gets a new session id and cookie (no fixation)."""
    await register(browser)
    first = await cookie_login(browser)
    first_cookie = browser.cookies[COOKIE]
    second = await cookie_login(browser)
    assert second["session_id"] != first["session_id"]
    assert browser.cookies[COOKIE] != first_cookie


async def test_unsafe_requests_need_the_sessions_csrf_token(browser: httpx.AsyncClient) -> None:
    """Without X-CSRF-Token, or with another session's, a cookie-authenticated PATCH is 403
    csrf_failed and changes nothing; with its own token it goes through."""
    await register(browser)
    other = await cookie_login(browser)
    mine = await cookie_login(browser)
    patch = {"email": "alice@example.com", "current_password": PASSWORD}
    missing = await browser.patch("/users/me", json=patch)
    foreign = await browser.patch("/users/me", json=patch, headers=csrf(other))
    for refused in (missing, foreign):
        assert refused.status_code == 403
        assert refused.json()["code"] == "csrf_failed"
    assert (await browser.get("/users/me")).json()["email"] is None
    done = await browser.patch("/users/me", json=patch, headers=csrf(mine))
    assert done.status_code == 200
    assert done.json()["email"] == "alice@example.com"


@pytest.mark.parametrize(
    ("headers", "allowed"),
    [
        ({"Origin": "https://evil.example"}, False),
        ({"Origin": "https://testserver:8443"}, False),
        ({"Sec-Fetch-Site": "cross-site"}, False),
        ({"Origin": ORIGIN, "Sec-Fetch-Site": "same-origin"}, True),
        ({"Origin": "https://auth.example.test"}, True),
        ({}, True),
    ],
)
async def test_a_foreign_origin_is_refused_even_with_the_token(
    browser: httpx.AsyncClient, headers: dict[str, str], allowed: bool
) -> None:
    """The issuer's origin and the request's own are accepted; any other Origin (another port
    too) and Sec-Fetch-Site: cross-site are 403, the session stays."""
    await register(browser)
    body = await cookie_login(browser)
    response = await browser.post("/auth/logout-all", headers=csrf(body, **headers))
    assert response.status_code == (204 if allowed else 403), response.text
    assert (await browser.get("/users/me")).status_code == (401 if allowed else 200)


async def test_a_cookie_login_from_another_origin_is_refused(browser: httpx.AsyncClient) -> None:
    """No login CSRF: POST /auth/session with a foreign Origin is 403 and sets no cookie."""
    await register(browser)
    response = await browser.post(
        "/auth/session",
        json={"username": "alice", "password": PASSWORD},
        headers={"Origin": "https://evil.example"},
    )
    assert response.status_code == 403
    assert "set-cookie" not in response.headers


async def test_bearer_and_api_key_requests_skip_the_csrf_checks(
    browser: httpx.AsyncClient, client: httpx.AsyncClient
) -> None:
    """A bearer token from a foreign Origin without a CSRF token still works: it is not ambient."""
    await register(client)
    pair = await login(client)
    response = await client.post(
        "/auth/logout", headers={**bearer(pair), "Origin": "https://evil.example"}
    )
    assert response.status_code == 204


async def test_a_cookie_request_with_a_non_json_body_changes_nothing(
    browser: httpx.AsyncClient,
) -> None:
    """CVE-2021-32677: text/plain (what a cross-site form can send) to a JSON route is 4xx."""
    await register(browser)
    body = await cookie_login(browser)
    response = await browser.patch(
        "/users/me",
        content=b'{"email": "evil@example.com"}',
        headers=csrf(body, **{"Content-Type": "text/plain"}),
    )
    assert response.status_code in (415, 422)
    assert (await browser.get("/users/me")).json()["email"] is None


async def test_the_cookie_dies_with_logout_and_every_session_ending_event(
    browser: httpx.AsyncClient, client: httpx.AsyncClient, services: Services
) -> None:
    """DELETE /auth/session ends it and clears the cookie; logout-all from a token session,
    a password change, and deactivation end it too."""
    await register(browser)
    body = await cookie_login(browser)
    value = browser.cookies[COOKIE]
    out = await browser.delete("/auth/session", headers=csrf(body))
    assert out.status_code == 204
    assert COOKIE in out.headers["set-cookie"]
    assert "max-age=0" in out.headers["set-cookie"].lower()
    assert COOKIE not in browser.cookies
    replayed = await client.get("/users/me", headers={"Cookie": f"{COOKIE}={value}"})
    assert replayed.status_code == 401

    for end in ("logout-all", "password", "deactivate"):
        cookie_body = await cookie_login(browser)
        assert (await browser.get("/users/me")).status_code == 200
        if end == "logout-all":
            await client.post("/auth/logout-all", headers=bearer(await login(client)))
        elif end == "password":
            changed = await client.post(
                "/users/me/password",
                json={"current_password": PASSWORD, "new_password": "a whole new passphrase"},
                headers=bearer(await login(client)),
            )
            assert changed.status_code == 204
            changed_back = await client.post(
                "/users/me/password",
                json={"current_password": "a whole new passphrase", "new_password": PASSWORD},
                headers=bearer(await login(client, password="a whole new passphrase")),
            )
            assert changed_back.status_code == 204
        else:
            admin = await admin_pair(client, services)
            me = (await browser.get("/users/me")).json()
            off = await client.patch(
                f"/admin/users/{me['id']}", json={"is_active": False}, headers=bearer(admin)
            )
            assert off.status_code == 200
        assert (await browser.get("/users/me")).status_code == 401, end
        assert cookie_body["csrf_token"]


async def test_the_cookie_session_keeps_the_idle_and_absolute_clocks(
    browser: httpx.AsyncClient, services: Services, clock: ManualClock
) -> None:
    """Unused for the idle TTL, the session ends; used, it slides, until the absolute TTL."""
    settings = services.settings
    await register(browser)
    await cookie_login(browser)
    clock.advance(settings.refresh_idle_ttl - timedelta(seconds=5))
    assert (await browser.get("/users/me")).status_code == 200  # slides the idle clock
    await asyncio.sleep(0.05)  # the use is written in the background
    clock.advance(timedelta(seconds=10))
    assert (await browser.get("/users/me")).status_code == 200
    clock.advance(settings.refresh_idle_ttl + timedelta(seconds=1))
    assert (await browser.get("/users/me")).status_code == 401

    await cookie_login(browser)
    steps = int(settings.refresh_absolute_ttl / settings.refresh_idle_ttl) + 1
    for _ in range(steps):
        clock.advance(settings.refresh_idle_ttl - timedelta(minutes=5))
        await browser.get("/users/me")
        await asyncio.sleep(0.05)
    assert (await browser.get("/users/me")).status_code == 401


async def test_a_cookie_value_is_no_refresh_token(browser: httpx.AsyncClient) -> None:
    """The cookie cannot be traded at /auth/refresh or /oauth/token."""
    await register(browser)
    await cookie_login(browser)
    value = browser.cookies[COOKIE]
    refused = await browser.post("/auth/refresh", json={"refresh_token": value})
    assert refused.status_code == 401
    oauth = await browser.post(
        "/oauth/token", data={"grant_type": "refresh_token", "refresh_token": value}
    )
    assert oauth.status_code == 400


async def test_local_http_development_uses_a_plain_insecure_cookie(
    database_url: str, tmp_path: Path
) -> None:
    """An http issuer with COOKIE_SECURE=false: `gatehouse_session`, without Secure."""
    services = build_services(
        make_settings(database_url, tmp_path, issuer="http://127.0.0.1:8000", cookie_secure=False)
    )
    app = create_app(services=services)
    try:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8000") as c:
            await register(c, "dev")
            response = await c.post("/auth/session", json={"username": "dev", "password": PASSWORD})
            cookie = response.headers["set-cookie"]
            assert cookie.startswith("gatehouse_session=")
            assert "secure" not in cookie.lower()
            assert (await c.get("/users/me")).status_code == 200
    finally:
        await services.close()


async def test_api_keys_in_the_query_or_a_cookie_only_when_enabled(
    database_url: str, tmp_path: Path, client: httpx.AsyncClient
) -> None:
    """By default ?api_key= and the gatehouse_api_key cookie are ignored (401); with the two
    settings on they authenticate, and the cookie gets the Origin checks on unsafe methods."""
    await register(client)
    pair = await login(client)
    created = await client.post("/users/me/api-keys", json={"name": "q"}, headers=bearer(pair))
    key = created.json()["key"]
    assert (await client.get("/users/me", params={"api_key": key})).status_code == 401
    key_cookie = {"Cookie": f"gatehouse_api_key={key}"}
    assert (await client.get("/users/me", headers=key_cookie)).status_code == 401

    services = build_services(
        make_settings(database_url, tmp_path, api_key_in_query=True, api_key_in_cookie=True)
    )
    app = create_app(services=services)
    try:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            by_query = await c.get("/users/me", params={"api_key": key, "other": "1"})
            assert by_query.status_code == 200, by_query.text
            by_cookie = await c.get("/users/me", headers=key_cookie)
            assert by_cookie.status_code == 200
            # The key cookie is ambient: an unsafe request with it from another origin is
            # refused like one riding the session cookie.
            foreign = await c.post(
                "/auth/logout-all",
                headers={**key_cookie, "Origin": "https://evil.example"},
            )
            assert foreign.status_code == 403
            assert foreign.json()["code"] == "csrf_failed"
    finally:
        await services.close()
