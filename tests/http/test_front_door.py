"""The front door through the app: security headers on every response, the self-hosted docs."""

from __future__ import annotations

import hashlib
import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from gatehouse.server.http.app import create_app
from gatehouse.server.wiring import Services, build_services
from tests.conftest import make_settings
from tests.http.helpers import PASSWORD, bearer, signup

FIXED = {
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
    "cross-origin-opener-policy": "same-origin",
}
API_CSP = "default-src 'none'; frame-ancestors 'none'"
HSTS = "max-age=31536000; includeSubDomains"
SWAGGER_UI = Path(__file__).parents[2] / "src/gatehouse/server/http/swagger_ui"


def assert_security_headers(response: httpx.Response, *, hsts: bool = True) -> None:
    for name, value in FIXED.items():
        assert response.headers.get_list(name) == [value], (name, response.request.url)
    assert response.headers.get("strict-transport-security") == (HSTS if hsts else None)


@pytest.fixture
async def crashing_client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the app with one extra route that raises, answered as a real server would."""

    async def boom() -> None:
        raise RuntimeError("bug")

    app.add_api_route("/test-only/boom", boom)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
        yield c


async def test_every_kind_of_response_carries_the_security_headers(
    client: httpx.AsyncClient, crashing_client: httpx.AsyncClient
) -> None:
    """200s, 201, 204, 401, 403, 404, 405, 413, 422, 400 (OAuth) and a 500 all carry the fixed
    headers, HSTS (the test issuer is https), the API CSP and no-store."""
    pair = await signup(client)
    responses = [
        await client.get("/healthz"),
        await client.get("/users/me", headers=bearer(pair)),
        await client.post("/auth/register", json={"username": "bob", "password": PASSWORD}),
        await client.get("/users/me"),
        await client.get("/admin/users", headers=bearer(pair)),
        await client.get("/no/such/route"),
        await client.put("/healthz"),
        await client.post("/auth/login", content=b"x" * 70_000),
        await client.post("/auth/login", json={}),
        await client.post("/oauth/token", data={}),
        await client.post("/auth/logout", headers=bearer(pair)),
    ]
    assert [r.status_code for r in responses] == [
        200, 200, 201, 401, 403, 404, 405, 413, 422, 400, 204,
    ]  # fmt: skip
    crashed = await crashing_client.get("/test-only/boom")
    assert crashed.status_code == 500
    for response in [*responses, crashed]:
        assert_security_headers(response)
        assert response.headers.get_list("content-security-policy") == [API_CSP]
        assert response.headers.get_list("cache-control") == ["no-store"]


async def test_token_and_user_responses_are_no_store(client: httpx.AsyncClient) -> None:
    """Login, refresh, the token endpoint, /users/me and the session list may not be cached."""
    pair = await signup(client)
    refreshed = await client.post("/auth/refresh", json={"refresh_token": pair["refresh_token"]})
    token = await client.post(
        "/oauth/token",
        data={"grant_type": "password", "username": "alice", "password": PASSWORD},
    )
    me = await client.get("/users/me", headers=bearer(refreshed.json()))
    sessions = await client.get("/users/me/sessions", headers=bearer(refreshed.json()))
    for response in (refreshed, token, me, sessions):
        assert response.status_code == 200, response.text
        assert response.headers["cache-control"] == "no-store"


async def test_the_jwks_keeps_its_own_cache_policy(client: httpx.AsyncClient) -> None:
    """A route that sets Cache-Control keeps it: public keys may be cached for five minutes."""
    response = await client.get("/.well-known/jwks.json")
    assert response.headers.get_list("cache-control") == ["public, max-age=300"]
    assert_security_headers(response)


async def test_hsts_only_when_the_issuer_is_https(database_url: str, tmp_path: Path) -> None:
    """An http issuer (a development setup) gets every header but Strict-Transport-Security."""
    services = build_services(make_settings(database_url, tmp_path, issuer="http://127.0.0.1:8000"))
    app = create_app(services=services)
    try:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            response = await c.get("/healthz")
        assert_security_headers(response, hsts=False)
    finally:
        await services.close()


async def test_the_docs_page_refers_only_to_our_own_assets(client: httpx.AsyncClient) -> None:
    """/docs is HTML whose scripts, styles and icon are same-origin paths, with no inline script,
    and a CSP allowing scripts and styles from 'self' only, no eval, no framing."""
    page = await client.get("/docs")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    csp = page.headers["content-security-policy"]
    directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
    assert directives["script-src"] == "'self'"
    assert directives["style-src"] == "'self'"
    assert directives["frame-ancestors"] == "'none'"
    assert directives["default-src"] == "'none'"
    assert "unsafe" not in csp
    assert_security_headers(page)

    urls = re.findall(r'(?:src|href)="([^"]*)"', page.text)
    assert urls, page.text
    assert all(u.startswith("/docs/assets/") for u in urls), urls
    assert "://" not in page.text
    assert re.search(r"<script(?![^>]*\bsrc=)[^>]*>", page.text) is None  # no inline script
    for url in urls:
        asset = await client.get(url)
        assert asset.status_code == 200, url
        assert asset.content


async def test_assets_are_the_vendored_files_with_their_types(client: httpx.AsyncClient) -> None:
    """The bundle and stylesheet are byte-for-byte the vendored swagger-ui-dist files recorded in
    SOURCE.txt, typed so that nosniff lets the browser run them."""
    recorded = dict(
        reversed(line.split())
        for line in (SWAGGER_UI / "SOURCE.txt").read_text().splitlines()
        if re.fullmatch(r"[0-9a-f]{64}  \S+", line)
    )
    assert set(recorded) == {"swagger-ui-bundle.js", "swagger-ui.css", "favicon-32x32.png"}
    types = {"js": "text/javascript", "css": "text/css", "png": "image/png"}
    for name, digest in recorded.items():
        response = await client.get(f"/docs/assets/{name}")
        assert response.status_code == 200
        assert hashlib.sha256(response.content).hexdigest() == digest
        assert response.headers["content-type"].startswith(types[name.rsplit(".", 1)[1]])
        assert response.headers["cache-control"] == "public, max-age=86400"


async def test_an_asset_revalidates_by_etag(client: httpx.AsyncClient) -> None:
    """If-None-Match with the asset's ETag answers 304 without a body."""
    first = await client.get("/docs/assets/swagger-ui.css")
    again = await client.get(
        "/docs/assets/swagger-ui.css", headers={"If-None-Match": first.headers["etag"]}
    )
    assert again.status_code == 304
    assert again.content == b""


@pytest.mark.parametrize(
    "path",
    [
        "/docs/assets/nope.js",
        "/docs/assets/LICENSE",
        "/docs/assets/SOURCE.txt",
        "/docs/assets/..%2f..%2fconfig.py",
        "/docs/assets/swagger_ui/swagger-ui.css",
        "/docs/oauth2-redirect",
        "/redoc",
    ],
)
async def test_unknown_docs_files_are_plain_404s(client: httpx.AsyncClient, path: str) -> None:
    """Anything but the page's own files answers the ordinary 404 problem, naming no path."""
    response = await client.get(path)
    assert response.status_code == 404
    assert response.json() == {
        "type": "urn:gatehouse:problem:not_found",
        "title": "Not Found",
        "status": 404,
        "detail": "No such resource.",
        "code": "not_found",
    }


async def test_docs_disabled_turns_off_page_schema_and_assets(
    database_url: str, tmp_path: Path
) -> None:
    """DOCS_ENABLED=false: /docs, /openapi.json and every asset answer 404."""
    services: Services = build_services(make_settings(database_url, tmp_path, docs_enabled=False))
    app = create_app(services=services)
    try:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            for path in ("/docs", "/openapi.json", "/docs/assets/swagger-ui-bundle.js"):
                assert (await c.get(path)).status_code == 404, path
    finally:
        await services.close()
