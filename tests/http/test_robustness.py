"""Bad input and bad days: oversized, malformed and hostile requests; a database that is down."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from gatehouse.server.http.app import create_app
from gatehouse.server.pagination import encode_cursor
from gatehouse.server.storage.tables import users
from gatehouse.server.wiring import Services, build_services
from tests.conftest import make_settings
from tests.http.helpers import PASSWORD, admin_pair, bearer


async def _user_count(services: Services) -> int:
    async with services.db.read() as conn:
        return int((await conn.execute(sa.select(sa.func.count()).select_from(users))).scalar_one())


async def test_a_declared_oversized_body_gets_413_before_parsing(
    client: httpx.AsyncClient, services: Services
) -> None:
    """Content-Length over MAX_BODY_BYTES answers 413 problem+json and stores nothing."""
    body = b'{"username": "big", "password": "' + b"p" * 70_000 + b'"}'
    response = await client.post(
        "/auth/register", content=body, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 413
    assert response.json()["code"] == "payload_too_large"
    assert await _user_count(services) == 0


async def test_a_streamed_oversized_body_gets_413(
    client: httpx.AsyncClient, services: Services
) -> None:
    """A chunked body with no length is cut off at the limit with 413."""

    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"username": "big", "password": "'
        for _ in range(20):
            yield b"p" * 8192
        yield b'"}'

    response = await client.post(
        "/auth/register", content=chunks(), headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 413
    assert await _user_count(services) == 0


async def test_a_streamed_body_within_the_limit_is_accepted(client: httpx.AsyncClient) -> None:
    """A chunked body under the limit reaches the route intact."""

    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"username": "streamer", '
        yield b'"password": "' + PASSWORD.encode() + b'"}'

    response = await client.post(
        "/auth/register", content=chunks(), headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 201


@pytest.mark.parametrize(
    "body",
    [
        b"{not json",
        b'{"username": "a", "password": ',
        b"[" * 5000 + b"]" * 5000,
        b'{"username": ' + b'{"a":' * 3000 + b"1" + b"}" * 3000 + b"}",
        b'{"username": "\xff\xfe", "password": "correct horse battery"}',
        b'{"username": "nul\\u0000", "password": "correct horse battery"}',
        b'{"username": "ok-name", "password": "correct\\u0000horse battery"}',
        b'{"username": "\\ud800", "password": "correct horse battery"}',
        b"\x00\x00\x00",
        b"",
        b"null",
        b'"just a string"',
    ],
)
async def test_malformed_bodies_get_a_4xx_and_store_nothing(
    client: httpx.AsyncClient, services: Services, body: bytes
) -> None:
    """Invalid or hostile JSON never causes a 500 and never creates an account."""
    response = await client.post(
        "/auth/register", content=body, headers={"Content-Type": "application/json"}
    )
    assert 400 <= response.status_code < 500
    assert response.headers["content-type"] == "application/problem+json"
    assert await _user_count(services) == 0


async def test_a_non_numeric_content_length_gets_400(client: httpx.AsyncClient) -> None:
    """A Content-Length that is not a number is refused before the app."""
    response = await client.post("/auth/login", content=b"{}", headers={"Content-Length": "ten"})
    assert response.status_code == 400


async def test_unknown_routes_and_methods_answer_problem_json(client: httpx.AsyncClient) -> None:
    """404 and 405 use the same problem+json shape with a code."""
    missing = await client.get("/nope")
    assert missing.status_code == 404
    assert missing.json()["code"] == "not_found"
    wrong = await client.get("/auth/login")
    assert wrong.status_code == 405
    assert wrong.json()["code"] == "method_not_allowed"


async def test_health_answers_without_the_database(client: httpx.AsyncClient) -> None:
    """/healthz says the process is alive; /readyz that the database answers."""
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    assert (await client.get("/readyz")).json() == {"status": "ready"}


@pytest.fixture(params=["postgresql", "sqlite"])
async def down_client(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[httpx.AsyncClient]:
    """An app whose database cannot be reached: a closed port, or a file that cannot open."""
    if request.param == "postgresql":
        url = "postgresql+asyncpg://postgres@127.0.0.1:1/none"
    else:
        blocker = tmp_path / "not-a-dir"
        blocker.write_text("")
        url = f"sqlite:///{blocker}/gatehouse.db"
    services = build_services(make_settings(url, tmp_path))
    app = create_app(services=services)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            yield client


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/readyz", None),
        ("POST", "/auth/register", {"username": "a", "password": PASSWORD}),
        ("POST", "/auth/login", {"username": "a", "password": PASSWORD}),
        ("POST", "/auth/refresh", {"refresh_token": "ghr_x"}),
        ("GET", "/.well-known/jwks.json", None),
    ],
)
async def test_a_database_that_is_down_gets_503_problem_json(
    down_client: httpx.AsyncClient, method: str, path: str, body: object
) -> None:
    """Requests that need storage answer 503 storage_unavailable with Retry-After, no trace."""
    response = await down_client.request(method, path, json=body)
    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["retry-after"] == "5"
    assert response.json()["code"] == "storage_unavailable"
    assert "Traceback" not in response.text
    assert "127.0.0.1" not in response.text


async def test_the_process_stays_alive_while_the_database_is_down(
    down_client: httpx.AsyncClient,
) -> None:
    """/healthz answers 200 even though storage is unreachable."""
    assert (await down_client.get("/healthz")).status_code == 200


async def test_the_oauth_endpoint_reports_a_down_database_in_rfc_form(
    down_client: httpx.AsyncClient,
) -> None:
    """The token endpoint answers 503 temporarily_unavailable in RFC 6749 shape."""
    response = await down_client.post(
        "/oauth/token", data={"grant_type": "password", "username": "a", "password": PASSWORD}
    )
    assert response.status_code == 503
    assert response.json()["error"] == "temporarily_unavailable"


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_dropped_database_connections_recover(
    client: httpx.AsyncClient, services: Services
) -> None:
    """After PostgreSQL kills our connections, requests answer 503 at worst, then recover."""
    assert (await client.get("/readyz")).status_code == 200
    async with services.db.write() as conn:
        await conn.execute(
            sa.text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        )
    statuses = [(await client.get("/readyz")).status_code for _ in range(3)]
    assert set(statuses) <= {200, 503}
    assert statuses[-1] == 200


@pytest.mark.parametrize("listing", ["/admin/devices", "/admin/licenses", "/admin/api-keys"])
async def test_a_forged_cursor_past_the_calendar_is_422_not_500(
    client: httpx.AsyncClient, services: Services, listing: str
) -> None:
    """A cursor in our own format whose offset pushes its instant before year 1 in UTC
    answers 422 naming `cursor`, on every (created_at, id) listing."""
    admin = await admin_pair(client, services)
    forged = encode_cursor("0001-01-01T00:00:00+14:00|00000000-0000-4000-8000-000000000000")
    response = await client.get(listing, params={"cursor": forged}, headers=bearer(admin))
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "cursor"
