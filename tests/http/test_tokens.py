"""Access tokens, JWKS, discovery, key rotation and forged tokens over HTTP."""

from __future__ import annotations

import base64
import json
from datetime import timedelta
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gatehouse.server.clock import ManualClock
from gatehouse.server.storage.keys import SqlSigningKeyRepository
from gatehouse.server.wiring import Services
from tests.http.helpers import bearer, login, signup


def _b64(data: dict[str, Any] | bytes) -> str:
    raw = data if isinstance(data, bytes) else json.dumps(data).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


async def test_access_token_has_the_rfc_9068_shape(
    client: httpx.AsyncClient, services: Services
) -> None:
    """Header: EdDSA, at+jwt, a kid from JWKS. Claims: iss, sub, aud, exp, iat, jti, sid, roles."""
    pair = await signup(client)
    header = jwt.get_unverified_header(pair["access_token"])
    assert header["alg"] == "EdDSA"
    assert header["typ"] == "at+jwt"
    jwks = (await client.get("/.well-known/jwks.json")).json()
    assert header["kid"] in {k["kid"] for k in jwks["keys"]}
    claims = jwt.decode(pair["access_token"], options={"verify_signature": False})
    assert {"iss", "sub", "aud", "exp", "iat", "jti", "sid", "roles"} <= set(claims)
    assert claims["iss"] == "https://auth.example.test"
    assert claims["aud"] == "gatehouse-tests"
    assert claims["sid"] == pair["session_id"]
    assert claims["roles"] == ["user"]
    assert claims["exp"] - claims["iat"] == 900


async def test_tokens_verify_against_the_published_jwks(client: httpx.AsyncClient) -> None:
    """A resource server holding only the JWKS can verify the token with PyJWT."""
    pair = await signup(client)
    jwks = (await client.get("/.well-known/jwks.json")).json()
    key = jwt.PyJWKSet.from_dict(jwks)[jwt.get_unverified_header(pair["access_token"])["kid"]]
    claims = jwt.decode(
        pair["access_token"],
        key,
        algorithms=["EdDSA"],
        audience="gatehouse-tests",
        options={"verify_exp": False, "verify_iat": False, "verify_nbf": False},
    )
    assert claims["sid"] == pair["session_id"]


async def test_jwks_publishes_public_keys_only(client: httpx.AsyncClient) -> None:
    """JWKS keys are OKP Ed25519 with kid, alg and use, and no private member."""
    response = await client.get("/.well-known/jwks.json")
    assert response.status_code == 200
    keys = response.json()["keys"]
    assert len(keys) == 1
    assert keys[0]["kty"] == "OKP"
    assert keys[0]["crv"] == "Ed25519"
    assert keys[0]["use"] == "sig"
    assert "d" not in keys[0]


async def test_discovery_documents_point_at_the_endpoints(client: httpx.AsyncClient) -> None:
    """openid-configuration names issuer, jwks_uri, token endpoint, grants and algorithms."""
    body = (await client.get("/.well-known/openid-configuration")).json()
    assert body["issuer"] == "https://auth.example.test"
    assert body["jwks_uri"] == "https://auth.example.test/.well-known/jwks.json"
    assert body["token_endpoint"] == "https://auth.example.test/oauth/token"
    assert set(body["grant_types_supported"]) == {"password", "refresh_token", "client_credentials"}
    assert body["access_token_signing_alg_values_supported"] == ["EdDSA"]
    rfc8414 = (await client.get("/.well-known/oauth-authorization-server")).json()
    assert rfc8414 == body


async def test_rotation_keeps_old_tokens_valid_and_signs_new_ones_with_the_new_key(
    client: httpx.AsyncClient, services: Services, clock: ManualClock
) -> None:
    """After rotation both keys are published; old tokens work until the old key retires."""
    before = await signup(client)
    old_kid = jwt.get_unverified_header(before["access_token"])["kid"]
    new_key = await services.keys.rotate()
    after = await login(client)
    assert jwt.get_unverified_header(after["access_token"])["kid"] == new_key.kid != old_kid
    kids = {k["kid"] for k in (await client.get("/.well-known/jwks.json")).json()["keys"]}
    assert kids == {old_kid, new_key.kid}
    assert (await client.get("/users/me", headers=bearer(before))).status_code == 200
    # It retires from JWKS only after key refresh interval + access-token TTL + leeway:
    # processes that had not reloaded yet may have signed with it until then.
    clock.advance(timedelta(minutes=16, seconds=29))
    await services.keys.reload()
    kids = {k["kid"] for k in (await client.get("/.well-known/jwks.json")).json()["keys"]}
    assert kids == {old_kid, new_key.kid}
    clock.advance(timedelta(seconds=2))
    await services.keys.reload()
    kids = {k["kid"] for k in (await client.get("/.well-known/jwks.json")).json()["keys"]}
    assert kids == {new_key.kid}


async def test_an_expired_access_token_is_refused(
    client: httpx.AsyncClient, clock: ManualClock
) -> None:
    """Past exp plus the leeway, the token gets 401 invalid_token."""
    pair = await signup(client)
    clock.advance(timedelta(minutes=15, seconds=31))
    response = await client.get("/users/me", headers=bearer(pair))
    assert response.status_code == 401
    assert 'error="invalid_token"' in response.headers["www-authenticate"]


async def test_a_request_without_a_token_gets_a_bearer_challenge(
    client: httpx.AsyncClient,
) -> None:
    """No Authorization header: 401 not_authenticated with WWW-Authenticate: Bearer."""
    response = await client.get("/users/me")
    assert response.status_code == 401
    assert response.json()["code"] == "not_authenticated"
    assert response.headers["www-authenticate"] == 'Bearer realm="gatehouse"'


def _forgeries(token: str) -> dict[str, str]:
    header_b64, payload_b64, signature = token.split(".")
    header = json.loads(base64.urlsafe_b64decode(header_b64 + "=="))
    claims = json.loads(base64.urlsafe_b64decode(payload_b64 + "=="))
    stranger = Ed25519PrivateKey.generate()

    def resign(new_claims: dict[str, Any], new_header: dict[str, Any] | None = None) -> str:
        return jwt.encode(new_claims, stranger, algorithm="EdDSA", headers=new_header or header)

    return {
        "alg none": f"{_b64({**header, 'alg': 'none'})}.{payload_b64}.",
        "HS256 with a public value as secret": jwt.encode(
            claims, header["kid"].encode() * 4, algorithm="HS256", headers={"kid": header["kid"]}
        ),
        "foreign key, same kid": resign(claims),
        "tampered claims": f"{header_b64}.{_b64({**claims, 'roles': ['admin']})}.{signature}",
        "unknown kid": resign(claims, {**header, "kid": "nope"}),
        "typ JWT": f"{_b64({**header, 'typ': 'JWT'})}.{payload_b64}.{signature}",
        "truncated": token[:-10],
        "two segments": f"{header_b64}.{payload_b64}",
        "garbage": "not.a.jwt",
        "empty segments": "..",
        "non-ascii": "ü.ö.ä",
        "huge": "a" * 5000,
    }


async def test_forged_and_malformed_tokens_get_401_invalid_token(
    client: httpx.AsyncClient,
) -> None:
    """Every forged or malformed bearer token is refused with 401 and a Bearer challenge."""
    pair = await signup(client)
    for name, token in _forgeries(pair["access_token"]).items():
        raw_header = {"Authorization": f"Bearer {token}".encode()}
        response = await client.get("/users/me", headers=raw_header)
        assert response.status_code == 401, name
        assert response.json()["code"] == "invalid_token", name
        assert 'error="invalid_token"' in response.headers["www-authenticate"], name


async def test_tokens_for_another_issuer_or_audience_are_refused(
    client: httpx.AsyncClient, services: Services
) -> None:
    """A validly signed token with the wrong iss or aud is refused."""
    pair = await signup(client)
    keyset = await services.keys.current()
    assert keyset.signing_key is not None
    claims = jwt.decode(pair["access_token"], options={"verify_signature": False})
    headers = {"kid": keyset.signing_key.kid, "typ": "at+jwt"}
    for change in ({"iss": "https://evil.example"}, {"aud": "other-api"}, {"sid": "not-a-uuid"}):
        forged = jwt.encode(
            {**claims, **change}, keyset.signing_key.private_key, algorithm="EdDSA", headers=headers
        )
        response = await client.get("/users/me", headers=bearer(forged))
        assert response.status_code == 401, change


@pytest.mark.parametrize(
    "authorization", ["Basic dXNlcjpwYXNz", "Bearer", "Bearer ", "Token abc", "bearer"]
)
async def test_malformed_authorization_headers_get_401(
    client: httpx.AsyncClient, authorization: str
) -> None:
    """Other schemes and empty bearer values are treated as no token."""
    response = await client.get("/users/me", headers={"Authorization": authorization})
    assert response.status_code == 401


async def test_signing_keys_are_encrypted_at_rest(services: Services) -> None:
    """The stored private key is not the raw key: a database copy alone cannot sign."""
    keyset = await services.keys.ensure_signing_key()
    assert keyset.signing_key is not None
    raw = keyset.signing_key.private_key.private_bytes_raw()
    stored = await SqlSigningKeyRepository(services.db).list_keys()
    assert len(stored) == 1
    assert raw not in stored[0].private_key_encrypted
