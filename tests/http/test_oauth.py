"""The RFC 6749 token endpoint and the Swagger UI wiring."""

from __future__ import annotations

import httpx
import pytest

from gatehouse.server.config import Settings
from gatehouse.server.http.app import create_app
from gatehouse.server.wiring import build_services
from tests.http.helpers import PASSWORD, bearer, register


async def test_password_grant_issues_a_pair(client: httpx.AsyncClient) -> None:
    """grant_type=password with form fields answers a bearer pair, not cached."""
    await register(client)
    response = await client.post(
        "/oauth/token", data={"grant_type": "password", "username": "alice", "password": PASSWORD}
    )
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["token_type"] == "bearer"
    assert (await client.get("/users/me", headers=bearer(body))).status_code == 200


async def test_refresh_token_grant_rotates(client: httpx.AsyncClient) -> None:
    """grant_type=refresh_token trades the refresh token for a new pair, once."""
    await register(client)
    first = (
        await client.post(
            "/oauth/token",
            data={"grant_type": "password", "username": "alice", "password": PASSWORD},
        )
    ).json()
    form = {"grant_type": "refresh_token", "refresh_token": first["refresh_token"]}
    second = await client.post("/oauth/token", data=form)
    assert second.status_code == 200
    again = await client.post("/oauth/token", data=form)
    assert again.status_code == 400
    assert again.json()["error"] == "invalid_grant"


@pytest.mark.parametrize(
    ("form", "error"),
    [
        (
            {"grant_type": "password", "username": "alice", "password": "wrong one!"},
            "invalid_grant",
        ),
        ({"grant_type": "password", "username": "ghost", "password": PASSWORD}, "invalid_grant"),
        ({"grant_type": "refresh_token", "refresh_token": "ghr_nope"}, "invalid_grant"),
        ({"grant_type": "password", "username": "alice"}, "invalid_request"),
        ({"grant_type": "refresh_token"}, "invalid_request"),
        ({}, "invalid_request"),
        ({"grant_type": "authorization_code", "code": "x"}, "unsupported_grant_type"),
    ],
)
async def test_token_endpoint_errors_follow_rfc_6749(
    client: httpx.AsyncClient, form: dict[str, str], error: str
) -> None:
    """Failures answer 400 with {error, error_description} and no-store."""
    await register(client)
    response = await client.post("/oauth/token", data=form)
    assert response.status_code == 400
    body = response.json()
    assert set(body) == {"error", "error_description"}
    assert body["error"] == error
    assert response.headers["cache-control"] == "no-store"
    assert PASSWORD not in response.text


async def test_token_endpoint_refuses_json_bodies_as_invalid_request(
    client: httpx.AsyncClient,
) -> None:
    """A JSON body is not a form: 400 invalid_request, never 422 or 500."""
    response = await client.post("/oauth/token", json={"grant_type": "password"})
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


async def test_login_and_password_grant_fail_alike(client: httpx.AsyncClient) -> None:
    """Both paths refuse a wrong password; the token endpoint in RFC form, login in problem form."""
    await register(client)
    oauth = await client.post(
        "/oauth/token", data={"grant_type": "password", "username": "alice", "password": "nope1234"}
    )
    login = await client.post("/auth/login", json={"username": "alice", "password": "nope1234"})
    assert oauth.json()["error_description"] == login.json()["detail"]


async def test_openapi_declares_the_password_flow_for_swagger(client: httpx.AsyncClient) -> None:
    """Swagger's Authorize uses the OAuth2 password flow against /oauth/token."""
    spec = (await client.get("/openapi.json")).json()
    flows = spec["components"]["securitySchemes"]["OAuth2PasswordBearer"]["flows"]
    assert flows["password"]["tokenUrl"] == "/oauth/token"
    assert (await client.get("/docs")).status_code == 200


async def test_docs_can_be_turned_off(settings: Settings) -> None:
    """With DOCS_ENABLED=false, /docs and /openapi.json answer 404."""
    closed = settings.model_copy(update={"docs_enabled": False})
    services = build_services(closed)
    app = create_app(services=services)
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://t"
        ) as c:
            assert (await c.get("/docs")).status_code == 404
            assert (await c.get("/openapi.json")).status_code == 404
    finally:
        await services.close()


async def test_client_id_and_scope_are_accepted_and_ignored(client: httpx.AsyncClient) -> None:
    """Swagger sends client_id and scope; odd values never break the grant."""
    await register(client)
    response = await client.post(
        "/oauth/token",
        data={
            "grant_type": "password",
            "username": "alice",
            "password": PASSWORD,
            "client_id": "swagger\x00" + "c" * 500,
            "scope": "anything at all",
        },
    )
    assert response.status_code == 200
