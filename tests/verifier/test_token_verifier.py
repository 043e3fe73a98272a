"""`TokenVerifier` against the real Gatehouse app (in-process, over ASGI): discovery, the
JWKS cache, key rotation and the refetch cooldown, with tokens the server signed."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gatehouse.server.clock import ManualClock
from gatehouse.server.wiring import Services
from gatehouse.verifier import (
    ExpiredTokenError,
    InvalidClaimsError,
    TokenVerifier,
    UnknownKeyError,
)
from tests.http.helpers import PASSWORD, admin_pair, bearer, signup
from tests.verifier import forge
from tests.verifier.conftest import Counted

ISSUER = "https://auth.example.test"
AUDIENCE = "gatehouse-tests"


def _verifier(counted: Counted, clock: ManualClock, **options: float) -> TokenVerifier:
    return TokenVerifier(
        ISSUER,
        AUDIENCE,
        async_http_client=counted.client,
        clock=lambda: clock.now().timestamp(),
        **options,  # type: ignore[arg-type]
    )


def _garbage(kid: str) -> str:
    """Well-formed, right issuer and audience, unknown kid: reaches the key lookup."""
    body = forge.claims(iss=ISSUER, aud=AUDIENCE, iat=None, nbf=None, exp=None)
    now = int(ManualClock().now().timestamp())
    body.update({"iat": now, "exp": now + 600})
    return forge.eddsa(forge.header(kid=kid), body, key=Ed25519PrivateKey.generate())


async def test_a_server_token_verifies_via_discovery(
    client: httpx.AsyncClient, counted: Counted, clock: ManualClock
) -> None:
    """With no jwks_url, discovery finds the JWKS; a login token yields its user's claims."""
    pair = await signup(client)
    me = (await client.get("/users/me", headers=bearer(pair))).json()
    verifier = _verifier(counted, clock)
    claims = await verifier.averify(pair["access_token"])
    assert claims.subject == me["id"]
    assert claims.session_id == pair["session_id"]
    assert claims.roles == frozenset({"user"})
    assert claims.scopes == frozenset()
    assert claims.client_id is None
    assert not claims.is_device
    assert claims.raw["jti"] == claims.token_id
    assert counted.paths == ["/.well-known/openid-configuration", "/.well-known/jwks.json"]
    assert verifier.jwks_url == f"{ISSUER}/.well-known/jwks.json"


async def test_a_client_credentials_token_carries_client_id_and_scopes(
    client: httpx.AsyncClient, services: Services, counted: Counted, clock: ManualClock
) -> None:
    """An API key's token: client_id set, scopes from `scope`, roles the granted roles."""
    admin = await admin_pair(client, services)
    created = await client.post(
        "/users/me/api-keys", json={"name": "svc", "scopes": ["user"]}, headers=bearer(admin)
    )
    record = created.json()
    client_id, _, secret = record["key"].rpartition("_")
    token = await client.post(
        "/oauth/token",
        data={"grant_type": "client_credentials"},
        auth=(client_id, secret),
    )
    claims = await _verifier(counted, clock).averify(token.json()["access_token"])
    assert claims.client_id == client_id
    assert claims.scopes == frozenset({"user"})
    assert claims.roles == frozenset({"user"})
    assert claims.session_id is None


async def test_cached_keys_verify_without_another_fetch(
    client: httpx.AsyncClient, counted: Counted, clock: ManualClock
) -> None:
    """Within the TTL, later tokens of the same key cost no request; past it, one refetch."""
    verifier = _verifier(counted, clock, jwks_ttl=300)
    first = await signup(client, "alice")
    second = await signup(client, "bob")
    await verifier.averify(first["access_token"])
    await verifier.averify(second["access_token"])
    assert len(counted.paths) == 2  # discovery + JWKS, once
    clock.advance(timedelta(seconds=301))
    fresh = await signup(client, "carol")
    await verifier.averify(fresh["access_token"])
    assert counted.paths[2:] == ["/.well-known/jwks.json"]


async def test_a_rotated_key_is_fetched_once_and_garbage_kids_wait_for_the_cooldown(
    client: httpx.AsyncClient, services: Services, counted: Counted, clock: ManualClock
) -> None:
    """After services.keys.rotate(), a token of the new key is accepted by refetching the
    JWKS; within the 30 s cooldown, unknown kids cause no request; after it, one each."""
    verifier = _verifier(counted, clock, unknown_kid_cooldown=30)
    before = await signup(client, "alice")
    await verifier.averify(before["access_token"])
    fetched = len(counted.paths)

    await services.keys.rotate()
    after = await client.post("/auth/login", json={"username": "alice", "password": PASSWORD})
    new_token = after.json()["access_token"]
    claims = await verifier.averify(new_token)
    assert claims.key_id != (await verifier.averify(before["access_token"])).key_id
    assert counted.paths[fetched:] == ["/.well-known/jwks.json"]

    for n in range(20):
        with pytest.raises(UnknownKeyError):
            await verifier.averify(_garbage(f"garbage-{n}"))
    assert len(counted.paths) == fetched + 1

    clock.advance(timedelta(seconds=31))
    for n in range(20):
        with pytest.raises(UnknownKeyError):
            await verifier.averify(_garbage(f"later-{n}"))
    assert len(counted.paths) == fetched + 2


async def test_server_tokens_expire_on_the_verifiers_clock(
    client: httpx.AsyncClient, counted: Counted, clock: ManualClock
) -> None:
    """A server token past exp plus the leeway is ExpiredTokenError."""
    pair = await signup(client)
    verifier = _verifier(counted, clock, leeway=30)
    await verifier.averify(pair["access_token"])
    clock.advance(timedelta(seconds=900 + 31))
    with pytest.raises(ExpiredTokenError):
        await verifier.averify(pair["access_token"])


async def test_another_audience_refuses_server_tokens(
    client: httpx.AsyncClient, counted: Counted, clock: ManualClock
) -> None:
    """A verifier for another service's audience refuses this deployment's tokens."""
    pair = await signup(client)
    verifier = TokenVerifier(
        ISSUER,
        "another-service",
        async_http_client=counted.client,
        clock=lambda: clock.now().timestamp(),
    )
    with pytest.raises(InvalidClaimsError):
        await verifier.averify(pair["access_token"])


async def test_discovery_naming_another_issuer_is_not_trusted(
    client: httpx.AsyncClient,
    counted: Counted,
    clock: ManualClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """RFC 8414 s3.3: metadata whose issuer is not exactly ours (here: ours without the
    trailing slash we configured) is ignored: its jwks_uri is never fetched, a warning is
    logged, and the token's kid is unknown."""
    pair = await signup(client)
    verifier = TokenVerifier(
        ISSUER + "/",
        AUDIENCE,
        async_http_client=counted.client,
        clock=lambda: clock.now().timestamp(),
    )
    with pytest.raises(UnknownKeyError):
        await verifier.averify(pair["access_token"])
    assert "names another issuer" in caplog.text
    assert counted.paths == ["/.well-known/openid-configuration"]
