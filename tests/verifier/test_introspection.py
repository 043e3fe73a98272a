"""`IntrospectionVerifier` against the real app's /oauth/introspect: live answers, the short
positive cache (never past `exp`), no negative cache, and a refused key."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pytest

from gatehouse.server.clock import ManualClock
from gatehouse.server.wiring import Services
from gatehouse.verifier import (
    InactiveTokenError,
    IntrospectionVerifier,
    InvalidClaimsError,
    VerifierUnavailableError,
)
from tests.http.helpers import admin_pair, bearer, signup
from tests.verifier.conftest import Counted

URL = "http://testserver/oauth/introspect"


async def _introspect_key(client: httpx.AsyncClient, services: Services, **body: Any) -> str:
    admin = await admin_pair(client, services)
    response = await client.post(
        "/users/me/api-keys",
        json={"name": "introspector", "scopes": ["introspect"], **body},
        headers=bearer(admin),
    )
    assert response.status_code == 201, response.text
    key: str = response.json()["key"]
    return key


def _verifier(
    counted: Counted, clock: ManualClock, api_key: str, **options: Any
) -> IntrospectionVerifier:
    return IntrospectionVerifier(
        URL,
        api_key=api_key,
        async_http_client=counted.client,
        clock=lambda: clock.now().timestamp(),
        **options,
    )


async def test_an_active_token_yields_claims_from_the_answer(
    client: httpx.AsyncClient, services: Services, counted: Counted, clock: ManualClock
) -> None:
    """A live session's token: sub, sid, exp and its roles as roles and scopes."""
    verifier = _verifier(counted, clock, await _introspect_key(client, services))
    pair = await signup(client)
    me = (await client.get("/users/me", headers=bearer(pair))).json()
    claims = await verifier.averify(pair["access_token"])
    assert claims.subject == me["id"]
    assert claims.session_id == pair["session_id"]
    assert claims.roles == claims.scopes == frozenset({"user"})
    assert claims.audience == ("gatehouse-tests",)
    assert not claims.is_device
    assert claims.raw["active"] is True


async def test_a_positive_answer_is_reused_for_the_ttl_only(
    client: httpx.AsyncClient, services: Services, counted: Counted, clock: ManualClock
) -> None:
    """Within cache_ttl the second call makes no request; after it, the server is asked."""
    verifier = _verifier(counted, clock, await _introspect_key(client, services), cache_ttl=5)
    pair = await signup(client)
    await verifier.averify(pair["access_token"])
    await verifier.averify(pair["access_token"])
    assert counted.paths == ["/oauth/introspect"]
    clock.advance(timedelta(seconds=6))
    await verifier.averify(pair["access_token"])
    assert counted.paths == ["/oauth/introspect"] * 2


async def test_a_revoked_session_is_inactive_once_the_ttl_passes(
    client: httpx.AsyncClient, services: Services, counted: Counted, clock: ManualClock
) -> None:
    """After logout, the next asked call raises InactiveTokenError, and so does every later
    one, each asking again (negative answers are never cached)."""
    verifier = _verifier(counted, clock, await _introspect_key(client, services), cache_ttl=5)
    pair = await signup(client)
    await verifier.averify(pair["access_token"])
    assert (await client.post("/auth/logout", headers=bearer(pair))).status_code == 204
    clock.advance(timedelta(seconds=6))
    for _ in range(2):
        with pytest.raises(InactiveTokenError):
            await verifier.averify(pair["access_token"])
    assert counted.paths == ["/oauth/introspect"] * 3


async def test_a_positive_answer_is_never_reused_past_exp(
    client: httpx.AsyncClient, services: Services, counted: Counted, clock: ManualClock
) -> None:
    """With a TTL longer than the token's life, the cache still ends at `exp`: past it the
    server is asked again (and, past its leeway too, says inactive)."""
    key = await _introspect_key(client, services)
    verifier = _verifier(counted, clock, key, cache_ttl=100_000)
    pair = await signup(client)
    claims = await verifier.averify(pair["access_token"])
    clock.advance(timedelta(seconds=claims.expires_at - clock.now().timestamp() - 1))
    await verifier.averify(pair["access_token"])
    assert counted.paths == ["/oauth/introspect"]
    clock.advance(timedelta(seconds=32))
    with pytest.raises(InactiveTokenError):
        await verifier.averify(pair["access_token"])
    assert counted.paths == ["/oauth/introspect"] * 2


async def test_garbage_is_inactive(
    client: httpx.AsyncClient, services: Services, counted: Counted, clock: ManualClock
) -> None:
    """A string that is no token at all: InactiveTokenError, not a crash."""
    verifier = _verifier(counted, clock, await _introspect_key(client, services))
    with pytest.raises(InactiveTokenError):
        await verifier.averify("not-a-token")


async def test_a_key_without_the_introspect_scope_makes_the_verifier_unavailable(
    client: httpx.AsyncClient, services: Services, counted: Counted, clock: ManualClock
) -> None:
    """Gatehouse answers 403 to a key lacking `introspect`: VerifierUnavailableError (the
    token is refused, and the reason is ours, not the token's)."""
    user = await signup(client)
    plain = await client.post("/users/me/api-keys", json={"name": "x"}, headers=bearer(user))
    verifier = _verifier(counted, clock, plain.json()["key"])
    with pytest.raises(VerifierUnavailableError, match="403"):
        await verifier.averify(user["access_token"])


async def test_another_audience_is_refused(
    client: httpx.AsyncClient, services: Services, counted: Counted, clock: ManualClock
) -> None:
    """With `audience` set, an active token for another audience is InvalidClaimsError."""
    key = await _introspect_key(client, services)
    verifier = _verifier(counted, clock, key, audience="billing")
    pair = await signup(client)
    with pytest.raises(InvalidClaimsError):
        await verifier.averify(pair["access_token"])
