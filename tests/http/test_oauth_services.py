"""The OAuth surface for services: client credentials, revocation (RFC 7009), introspection
(RFC 7662) and their discovery metadata, through the real app."""

from __future__ import annotations

import base64
from typing import Any
from urllib.parse import quote_plus
from uuid import UUID

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gatehouse.server.clock import ManualClock
from gatehouse.server.tokens.issuer import AccessTokenIssuer
from gatehouse.server.wiring import Services
from tests.http.helpers import PASSWORD, admin_pair, bearer, login, register, signup


async def make_key(
    client: httpx.AsyncClient, pair: dict[str, Any], **body: Any
) -> tuple[str, str, dict[str, Any]]:
    """A new key of the pair's user: (client_id, client_secret, record)."""
    response = await client.post(
        "/users/me/api-keys", json={"name": "svc", **body}, headers=bearer(pair)
    )
    assert response.status_code == 201, response.text
    record = response.json()
    client_id, _, secret = record["key"].rpartition("_")
    assert client_id == record["client_id"]
    return client_id, secret, record


def basic(client_id: str, secret: str) -> dict[str, str]:
    raw = f"{quote_plus(client_id)}:{quote_plus(secret)}".encode()
    return {"Authorization": "Basic " + base64.b64encode(raw).decode()}


async def exchange(client: httpx.AsyncClient, client_id: str, secret: str, **form: str) -> Any:
    return await client.post(
        "/oauth/token",
        data={"grant_type": "client_credentials", **form},
        headers=basic(client_id, secret),
    )


@pytest.mark.parametrize("how", ["basic", "body"])
async def test_client_credentials_trade_a_key_for_a_role_carrying_token(
    client: httpx.AsyncClient, services: Services, how: str
) -> None:
    """By HTTP Basic or in the form body: 200 {access_token, token_type, expires_in, scope} with
    no refresh token; the JWT has the login tokens' iss, aud, typ and lifetime, sub the owner,
    client_id, roles and space-separated scope; protected routes accept it."""
    admin = await admin_pair(client, services)
    client_id, secret, record = await make_key(client, admin)
    if how == "basic":
        response = await exchange(client, client_id, secret)
    else:
        response = await client.post(
            "/oauth/token",
            data={
                "grant_type": "client_credentials",
                "client_id": client_id,
                "client_secret": secret,
            },
        )
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert set(body) == {"access_token", "token_type", "expires_in", "scope"}
    assert body["scope"] == "admin user"
    assert body["expires_in"] == services.settings.access_token_ttl.total_seconds()

    claims = jwt.decode(body["access_token"], options={"verify_signature": False})
    header = jwt.get_unverified_header(body["access_token"])
    login_claims = jwt.decode(admin["access_token"], options={"verify_signature": False})
    assert header["typ"] == "at+jwt"
    assert claims["iss"] == login_claims["iss"]
    assert claims["aud"] == login_claims["aud"]
    assert claims["exp"] - claims["iat"] == login_claims["exp"] - login_claims["iat"]
    assert claims["sub"] == record["owner_id"]
    assert claims["client_id"] == client_id
    assert claims["roles"] == ["admin", "user"]
    assert claims["scope"] == "admin user"
    assert "sid" not in claims

    assert (await client.get("/users/me", headers=bearer(body))).status_code == 200
    assert (await client.get("/admin/users", headers=bearer(body))).status_code == 200


async def test_scope_narrows_and_asking_beyond_the_key_is_invalid_scope(
    client: httpx.AsyncClient, services: Services
) -> None:
    """`scope=user` from an admin key gives a token that is refused on admin routes;
    `scope=admin` from a user-only key is 400 invalid_scope."""
    admin = await admin_pair(client, services)
    client_id, secret, _ = await make_key(client, admin)
    narrowed = await exchange(client, client_id, secret, scope="user")
    assert narrowed.json()["scope"] == "user"
    assert (await client.get("/admin/users", headers=bearer(narrowed.json()))).status_code == 403

    user_id, user_secret, _ = await make_key(client, admin, scopes=["user"])
    beyond = await exchange(client, user_id, user_secret, scope="admin")
    assert beyond.status_code == 400
    assert beyond.json()["error"] == "invalid_scope"


async def test_a_client_token_dies_with_its_key_or_its_owner(
    client: httpx.AsyncClient, services: Services
) -> None:
    """Revoking the key refuses its tokens on the next request; so does deactivating the owner."""
    alice = await signup(client)
    client_id, secret, record = await make_key(client, alice)
    token = (await exchange(client, client_id, secret)).json()
    assert (await client.get("/users/me", headers=bearer(token))).status_code == 200
    await client.delete(f"/users/me/api-keys/{record['id']}", headers=bearer(alice))
    assert (await client.get("/users/me", headers=bearer(token))).status_code == 401

    admin = await admin_pair(client, services)
    bob = await register(client, "bob")
    bob_id, bob_secret, _ = await make_key(client, await login(client, "bob"))
    bob_token = (await exchange(client, bob_id, bob_secret)).json()
    await client.patch(
        f"/admin/users/{bob['id']}", json={"is_active": False}, headers=bearer(admin)
    )
    assert (await client.get("/users/me", headers=bearer(bob_token))).status_code == 401


@pytest.mark.parametrize(
    "credentials",
    ["wrong-secret", "unknown-id", "revoked", "malformed-basic", "missing"],
)
async def test_bad_client_credentials_are_invalid_client_with_a_basic_challenge(
    client: httpx.AsyncClient, credentials: str
) -> None:
    """401 invalid_client with `WWW-Authenticate: Basic realm="gatehouse"`, one body for all."""
    alice = await signup(client)
    client_id, secret, record = await make_key(client, alice)
    headers: dict[str, str] = {}
    if credentials == "wrong-secret":
        headers = basic(client_id, "x" * 32)
    elif credentials == "unknown-id":
        headers = basic("ghk_" + "Q" * 16, secret)
    elif credentials == "revoked":
        await client.delete(f"/users/me/api-keys/{record['id']}", headers=bearer(alice))
        headers = basic(client_id, secret)
    elif credentials == "malformed-basic":
        headers = {"Authorization": "Basic !!!not-base64"}
    response = await client.post(
        "/oauth/token", data={"grant_type": "client_credentials"}, headers=headers
    )
    assert response.status_code == 401
    assert response.json() == {
        "error": "invalid_client",
        "error_description": "Client authentication failed.",
    }
    assert response.headers["www-authenticate"] == 'Basic realm="gatehouse"'
    assert response.headers["cache-control"] == "no-store"
    assert secret not in response.text


async def test_malformed_token_requests_are_invalid_request(client: httpx.AsyncClient) -> None:
    """A repeated parameter, JSON instead of a form, or credentials both ways: 400
    invalid_request, no-store."""
    alice = await signup(client)
    client_id, secret, _ = await make_key(client, alice)
    repeated = await client.post(
        "/oauth/token",
        content="grant_type=client_credentials&grant_type=password",
        headers={"Content-Type": "application/x-www-form-urlencoded", **basic(client_id, secret)},
    )
    as_json = await client.post(
        "/oauth/token", json={"grant_type": "password", "username": "alice", "password": PASSWORD}
    )
    both = await client.post(
        "/oauth/token",
        data={"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret},
        headers=basic(client_id, secret),
    )
    for response in (repeated, as_json, both):
        assert response.status_code == 400, response.text
        assert response.json()["error"] == "invalid_request"
        assert response.headers["cache-control"] == "no-store"


async def revoke(client: httpx.AsyncClient, token: str, **extra: str) -> httpx.Response:
    response = await client.post("/oauth/revoke", data={"token": token, **extra})
    assert response.status_code == 200, response.text
    assert response.content == b""
    assert response.headers["cache-control"] == "no-store"
    return response


async def test_revoking_a_refresh_token_ends_its_session(client: httpx.AsyncClient) -> None:
    """POST /oauth/revoke with a refresh token (any hint) ends the session: its access token is
    refused and the refresh token no longer refreshes. No client authentication."""
    pair = await signup(client)
    await revoke(client, pair["refresh_token"], token_type_hint="access_token")
    assert (await client.get("/users/me", headers=bearer(pair))).status_code == 401
    refreshed = await client.post("/auth/refresh", json={"refresh_token": pair["refresh_token"]})
    assert refreshed.status_code == 401


async def test_revoking_an_access_token_ends_its_session(client: httpx.AsyncClient) -> None:
    """An access token of a session: the session ends, other sessions stay."""
    first = await signup(client)
    second = await login(client)
    await revoke(client, first["access_token"], token_type_hint="whatever-unknown")
    assert (await client.get("/users/me", headers=bearer(first))).status_code == 401
    assert (await client.get("/users/me", headers=bearer(second))).status_code == 200


async def test_revoking_a_key_presented_whole_revokes_it(client: httpx.AsyncClient) -> None:
    """Holding the whole key is the authority to revoke it (a leaked key can be killed)."""
    alice = await signup(client)
    _, _, record = await make_key(client, alice)
    await revoke(client, record["key"])
    assert (await client.get("/users/me", headers={"X-API-Key": record["key"]})).status_code == 401


async def test_a_client_token_revocation_changes_nothing(
    client: httpx.AsyncClient,
) -> None:
    """A client-credentials access token is not revocable on its own: 200, and it (and its key)
    keep working until exp or until the key is revoked (as documented)."""
    alice = await signup(client)
    client_id, secret, record = await make_key(client, alice)
    token = (await exchange(client, client_id, secret)).json()["access_token"]
    await revoke(client, token)
    assert (await client.get("/users/me", headers=bearer(token))).status_code == 200
    assert (await client.get("/users/me", headers={"X-API-Key": record["key"]})).status_code == 200


@pytest.mark.parametrize(
    "token",
    ["", "garbage", "ghr_unknown", "eyJhbGciOiJub25lIn0.e30.", "ghk_" + "a" * 16 + "_" + "b" * 32],
)
async def test_revoking_anything_unknown_answers_200_and_says_nothing(
    client: httpx.AsyncClient, token: str
) -> None:
    """Unknown, malformed or foreign tokens: the same empty 200 (a missing token is 400)."""
    if not token:
        response = await client.post("/oauth/revoke", data={"token": ""})
        assert response.status_code == 400
        assert response.json()["error"] == "invalid_request"
        return
    await revoke(client, token)


async def introspect(
    client: httpx.AsyncClient, token: str, headers: dict[str, str]
) -> httpx.Response:
    return await client.post("/oauth/introspect", data={"token": token}, headers=headers)


async def test_introspection_of_a_live_session_token(
    client: httpx.AsyncClient, services: Services
) -> None:
    """An admin's bearer token introspects alice's access token: active with sub, username,
    sid, exp, iat, iss, aud, scope and token_type; no-store."""
    admin = await admin_pair(client, services)
    alice = await signup(client)
    response = await introspect(client, alice["access_token"], bearer(admin))
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    claims = jwt.decode(alice["access_token"], options={"verify_signature": False})
    assert body["active"] is True
    assert body["sub"] == claims["sub"]
    assert body["username"] == "alice"
    assert body["sid"] == alice["session_id"]
    assert (body["exp"], body["iat"], body["iss"], body["aud"]) == (
        claims["exp"], claims["iat"], claims["iss"], claims["aud"],
    )  # fmt: skip
    assert body["scope"] == "user"
    assert body["token_type"] == "bearer"
    assert "client_id" not in body


async def test_introspection_by_an_introspect_key_in_every_transport(
    client: httpx.AsyncClient, services: Services
) -> None:
    """A service account's key with the introspect scope may call it as Bearer, as X-API-Key,
    as client credentials by HTTP Basic, and through a client-credentials token; a client
    token introspected shows its client_id and no sid."""
    admin = await admin_pair(client, services)
    account = await client.post(
        "/admin/users",
        json={"username": "resource-server", "service_account": True, "roles": []},
        headers=bearer(admin),
    )
    issued = await client.post(
        "/admin/api-keys",
        json={"owner_id": account.json()["id"], "name": "introspection", "scopes": ["introspect"]},
        headers=bearer(admin),
    )
    key = issued.json()["key"]
    client_id, _, secret = key.rpartition("_")
    client_token = (await exchange(client, client_id, secret)).json()["access_token"]
    alice = await signup(client)
    for headers in (
        bearer(key),
        {"X-API-Key": key},
        basic(client_id, secret),
        bearer(client_token),
    ):
        response = await introspect(client, alice["access_token"], headers)
        assert response.status_code == 200, (headers, response.text)
        assert response.json()["active"] is True

    alice_id, alice_secret, _ = await make_key(client, alice)
    alice_client = (await exchange(client, alice_id, alice_secret)).json()["access_token"]
    described = (await introspect(client, alice_client, bearer(key))).json()
    assert described["client_id"] == alice_id
    assert described["username"] == "alice"
    assert "sid" not in described


async def test_introspection_needs_an_admin_or_the_introspect_scope(
    client: httpx.AsyncClient, services: Services
) -> None:
    """Anonymous: 401. A user's token, a user's key, an admin's key without `admin`: 403."""
    admin = await admin_pair(client, services)
    alice = await signup(client)
    _, _, alice_key = await make_key(client, alice)
    _, _, narrow_admin_key = await make_key(client, admin, scopes=["user"])
    anonymous = await introspect(client, alice["access_token"], {})
    assert anonymous.status_code == 401
    for headers in (
        bearer(alice),
        {"X-API-Key": alice_key["key"]},
        bearer(narrow_admin_key["key"]),
    ):
        response = await introspect(client, alice["access_token"], headers)
        assert response.status_code == 403, headers
        assert response.json()["error"] == "insufficient_scope"


async def test_introspection_says_only_inactive_for_every_bad_token(
    client: httpx.AsyncClient, services: Services, clock: ManualClock
) -> None:
    """Revoked, expired, forged, malformed, of another audience, refresh tokens and API keys:
    exactly {"active": false}; a revocation shows on the very next call."""
    admin = await admin_pair(client, services)
    alice = await signup(client)
    live = await introspect(client, alice["access_token"], bearer(admin))
    assert live.json()["active"] is True
    await client.post("/auth/logout", headers=bearer(alice))

    claims = jwt.decode(admin["access_token"], options={"verify_signature": False})
    header = jwt.get_unverified_header(admin["access_token"])
    forged = jwt.encode(claims, Ed25519PrivateKey.generate(), algorithm="EdDSA", headers=header)
    elsewhere = await AccessTokenIssuer(
        keys=services.keys,
        issuer=services.settings.issuer,
        audience="another-service",
        ttl=services.settings.access_token_ttl,
        clock=clock,
    ).issue(subject=UUID(claims["sub"]), session_id=UUID(admin["session_id"]), roles=["admin"])
    bob = await signup(client, "bob")
    _, _, key = await make_key(client, admin)
    bad = {
        "revoked": alice["access_token"],
        "refresh token": alice["refresh_token"],
        "api key": key["key"],
        "forged": forged,
        "another audience": elsewhere,
        "malformed": "not.a.jwt",
        "long": "x" * 600,
    }
    for name, token in bad.items():
        response = await introspect(client, token, bearer(admin))
        assert response.status_code == 200
        assert response.json() == {"active": False}, name

    clock.advance(services.settings.access_token_ttl + services.settings.token_leeway)
    fresh_admin = await login(client, "root-admin")
    expired = await introspect(client, bob["access_token"], bearer(fresh_admin))
    assert expired.json() == {"active": False}


async def test_discovery_lists_the_service_endpoints(client: httpx.AsyncClient) -> None:
    """RFC 8414 names: revocation and introspection endpoints, client_credentials, Basic/post."""
    body = (await client.get("/.well-known/oauth-authorization-server")).json()
    issuer = body["issuer"]
    assert body["revocation_endpoint"] == f"{issuer}/oauth/revoke"
    assert body["introspection_endpoint"] == f"{issuer}/oauth/introspect"
    assert "client_credentials" in body["grant_types_supported"]
    assert {"client_secret_basic", "client_secret_post"} <= set(
        body["token_endpoint_auth_methods_supported"]
    )
