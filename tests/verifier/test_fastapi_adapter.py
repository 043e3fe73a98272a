"""`gatehouse.verifier.fastapi` on a tiny FastAPI service: 200 with the claims, 401 and 403
with RFC 6750 challenges, the bearer scheme in OpenAPI; with each kind of verifier.

(No `from __future__ import annotations`: FastAPI reads the routes' annotations.)
"""

from collections.abc import AsyncIterator
from typing import Annotated, Any

import httpx
import pytest
from fastapi import Depends, FastAPI

from gatehouse.server.clock import ManualClock
from gatehouse.server.wiring import Services
from gatehouse.verifier import (
    AccessTokenClaims,
    AccessTokenVerifier,
    IntrospectionVerifier,
    StaticKeys,
    TokenVerifier,
    Verifier,
)
from gatehouse.verifier.fastapi import Authenticated, require_roles, require_scopes
from tests.http.helpers import admin_pair, bearer, signup
from tests.verifier import forge
from tests.verifier.conftest import Counted


def service(verifier: Verifier) -> FastAPI:
    """A resource service: /me for any valid token, /admin for admins, /reports by scope."""
    app = FastAPI()

    @app.get("/me")
    async def me(claims: Annotated[AccessTokenClaims, Depends(Authenticated(verifier))]) -> Any:
        return {"sub": claims.subject, "roles": sorted(claims.roles)}

    @app.get("/admin")
    async def admin(
        claims: Annotated[AccessTokenClaims, Depends(require_roles(verifier, "admin"))],
    ) -> Any:
        return {"sub": claims.subject}

    @app.get("/reports", dependencies=[Depends(require_scopes(verifier, "reports:read"))])
    async def reports() -> Any:
        return {"reports": []}

    return app


@pytest.fixture
async def static() -> AsyncIterator[httpx.AsyncClient]:
    """The service over a StaticKeys verifier with the forge's key, at the forge's NOW."""
    verifier = AccessTokenVerifier(
        keys=StaticKeys({forge.KID: forge.KEY.public_key()}),
        issuer=forge.ISSUER,
        audience=forge.AUDIENCE,
        clock=lambda: forge.NOW,
    )
    transport = httpx.ASGITransport(app=service(verifier))
    async with httpx.AsyncClient(transport=transport, base_url="http://svc") as c:
        yield c


def token(**changes: Any) -> dict[str, str]:
    return bearer(forge.eddsa(body=forge.claims(**changes)))


async def test_a_valid_token_reaches_the_route_with_its_claims(static: httpx.AsyncClient) -> None:
    """200, and the route sees the token's subject and roles."""
    response = await static.get("/me", headers=token())
    assert response.status_code == 200
    assert response.json() == {"sub": "user-1", "roles": ["user"]}


async def test_no_token_is_401_with_a_bare_bearer_challenge(static: httpx.AsyncClient) -> None:
    """RFC 6750 s3.1: a request without credentials gets `Bearer` and no error code."""
    for headers in ({}, {"Authorization": "Basic dTpw"}, {"Authorization": "Bearer "}):
        response = await static.get("/me", headers=headers)
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize(
    "headers",
    [
        {"Authorization": "Bearer not-a-token"},
        token(exp=int(forge.NOW) - 60),
        token(aud="other"),
        bearer(forge.unsigned("none")),
    ],
    ids=["garbage", "expired", "wrong audience", "alg none"],
)
async def test_a_bad_or_expired_token_is_401_invalid_token(
    static: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    """401 with `Bearer error="invalid_token"` and a description."""
    response = await static.get("/me", headers=headers)
    assert response.status_code == 401
    challenge = response.headers["www-authenticate"]
    assert challenge.startswith('Bearer error="invalid_token", error_description="')


async def test_a_missing_role_is_403_insufficient_scope(static: httpx.AsyncClient) -> None:
    """A user's token at /admin: 403 naming the needed role; an admin's passes."""
    response = await static.get("/admin", headers=token())
    assert response.status_code == 403
    assert response.headers["www-authenticate"] == (
        'Bearer error="insufficient_scope", '
        'error_description="The token lacks a required role.", scope="admin"'
    )
    assert (await static.get("/admin", headers=token(roles=["admin"]))).status_code == 200


async def test_a_missing_scope_is_403_and_the_scope_claim_satisfies_it(
    static: httpx.AsyncClient,
) -> None:
    """require_scopes reads the `scope` claim: absent is 403, present is 200."""
    assert (await static.get("/reports", headers=token())).status_code == 403
    granted = token(scope="reports:read other", client_id="ghk_x")
    assert (await static.get("/reports", headers=granted)).status_code == 200


async def test_protected_routes_show_the_bearer_scheme_in_openapi(
    static: httpx.AsyncClient,
) -> None:
    """OpenAPI names an HTTP bearer scheme, and each protected route requires it."""
    schema = (await static.get("/openapi.json")).json()
    scheme = schema["components"]["securitySchemes"]["GatehouseBearer"]
    assert scheme["type"] == "http"
    assert scheme["scheme"] == "bearer"
    for path in ("/me", "/admin", "/reports"):
        assert schema["paths"][path]["get"]["security"] == [{"GatehouseBearer": []}]


async def test_token_verifier_protects_a_service_with_server_tokens(
    client: httpx.AsyncClient, services: Services, counted: Counted, clock: ManualClock
) -> None:
    """With a JWKS-backed TokenVerifier (awaited), a real user is 200 at /me and 403 at
    /admin, a real admin 200 at both."""
    verifier = TokenVerifier(
        "https://auth.example.test",
        "gatehouse-tests",
        async_http_client=counted.client,
        clock=lambda: clock.now().timestamp(),
    )
    user, admin = await signup(client), await admin_pair(client, services)
    transport = httpx.ASGITransport(app=service(verifier))
    async with httpx.AsyncClient(transport=transport, base_url="http://svc") as svc:
        assert (await svc.get("/me", headers=bearer(user))).status_code == 200
        assert (await svc.get("/admin", headers=bearer(user))).status_code == 403
        assert (await svc.get("/admin", headers=bearer(admin))).status_code == 200


async def test_introspection_verifier_sees_a_logout_and_an_outage(
    client: httpx.AsyncClient, services: Services, counted: Counted, clock: ManualClock
) -> None:
    """With IntrospectionVerifier (cache off): 200, then 401 invalid_token once the session
    ended; a verifier whose key Gatehouse refuses answers 503 without a challenge."""
    admin = await admin_pair(client, services)
    created = await client.post(
        "/users/me/api-keys",
        json={"name": "i", "scopes": ["introspect"]},
        headers=bearer(admin),
    )
    good = IntrospectionVerifier(
        "http://testserver/oauth/introspect",
        api_key=created.json()["key"],
        cache_ttl=0,
        async_http_client=counted.client,
    )
    refused = IntrospectionVerifier(
        "http://testserver/oauth/introspect",
        api_key="ghk_nope_nope",
        async_http_client=counted.client,
    )
    user = await signup(client)
    async with (
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=service(good)), base_url="http://s"
        ) as svc,
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=service(refused)), base_url="http://s"
        ) as down,
    ):
        assert (await svc.get("/me", headers=bearer(user))).status_code == 200
        await client.post("/auth/logout", headers=bearer(user))
        ended = await svc.get("/me", headers=bearer(user))
        assert ended.status_code == 401
        assert 'error="invalid_token"' in ended.headers["www-authenticate"]
        unavailable = await down.get("/me", headers=bearer(admin))
        assert unavailable.status_code == 503
        assert "www-authenticate" not in unavailable.headers
