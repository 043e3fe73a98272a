"""Email verification over HTTP, with mail through a real local SMTP server (aiosmtpd)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from gatehouse.server.clock import ManualClock
from gatehouse.server.wiring import Services
from tests.http.helpers import PASSWORD, bearer, login, register, signup
from tests.http.mail import (
    Mailbox,
    drained,
    link_in,
    mail_settings,
    reset_mail,
    serving,
    text_of,
    token_in,
)
from tests.http.mail_fixtures import mail_settings_fixture, mailbox_fixture  # noqa: F401 - pytest fixtures

EMAIL = "alice@example.com"


async def _request(
    client: httpx.AsyncClient, mailbox: Mailbox, pair: dict[str, str], *, nth: int = 1
) -> str:
    response = await client.post("/auth/verify/request", headers=bearer(pair))
    assert response.status_code == 202, response.text
    return token_in((await mailbox.wait_for(nth))[nth - 1])


async def _verify(client: httpx.AsyncClient, token: str) -> httpx.Response:
    return await client.post("/auth/verify", json={"token": token})


async def test_a_verification_link_marks_the_address_verified(
    client: httpx.AsyncClient, mailbox: Mailbox
) -> None:
    """The mail goes to the account's address with <issuer>/verify-email?token=ghv_...;
    POST /auth/verify (no bearer) with its token: 204, and /users/me shows it verified."""
    await register(client, email=EMAIL)
    pair = await login(client)
    token = await _request(client, mailbox, pair)
    (message,) = await mailbox.wait_for(1)
    assert message["To"] == EMAIL
    assert link_in(message) == f"https://auth.example.test/verify-email?token={token}"
    assert EMAIL in text_of(message)
    assert token.startswith("ghv_")
    assert (await _verify(client, token)).status_code == 204
    me = await client.get("/users/me", headers=bearer(pair))
    assert me.json()["email_verified"] is True


async def _reused(client: httpx.AsyncClient, mailbox: Mailbox, pair: dict[str, str]) -> str:
    token = await _request(client, mailbox, pair)
    assert (await _verify(client, token)).status_code == 204
    # Verified now: make the address unverified again so only the token's reuse is tested.
    await client.patch(
        "/users/me",
        json={"email": "alice@other.example", "current_password": PASSWORD},
        headers=bearer(pair),
    )
    await client.patch(
        "/users/me", json={"email": EMAIL, "current_password": PASSWORD}, headers=bearer(pair)
    )
    return token


async def _superseded(client: httpx.AsyncClient, mailbox: Mailbox, pair: dict[str, str]) -> str:
    first = await _request(client, mailbox, pair)
    await _request(client, mailbox, pair, nth=2)
    return first


async def _altered(client: httpx.AsyncClient, mailbox: Mailbox, pair: dict[str, str]) -> str:
    token = await _request(client, mailbox, pair)
    return token[:-1] + ("A" if token[-1] != "A" else "B")


async def _address_changed(
    client: httpx.AsyncClient, mailbox: Mailbox, pair: dict[str, str]
) -> str:
    token = await _request(client, mailbox, pair)
    await client.patch(
        "/users/me",
        json={"email": "alice@other.example", "current_password": PASSWORD},
        headers=bearer(pair),
    )
    return token


async def _reset_token(client: httpx.AsyncClient, mailbox: Mailbox, pair: dict[str, str]) -> str:
    return await reset_mail(client, mailbox, EMAIL)


async def _malformed(client: httpx.AsyncClient, mailbox: Mailbox, pair: dict[str, str]) -> str:
    return "definitely not a token"


async def _access_token(client: httpx.AsyncClient, mailbox: Mailbox, pair: dict[str, str]) -> str:
    return pair["access_token"]


INVALID = {
    "reused": _reused,
    "superseded": _superseded,
    "altered": _altered,
    "address changed since": _address_changed,
    "reset token": _reset_token,
    "malformed": _malformed,
    "access token": _access_token,
}


@pytest.mark.parametrize("kind", list(INVALID))
async def test_a_token_that_is_not_live_answers_400_invalid_verification_token(
    client: httpx.AsyncClient, mailbox: Mailbox, kind: str
) -> None:
    """Reused, superseded, altered, for an address the account no longer has, of another
    kind, or malformed: 400 invalid_verification_token, and the address stays unverified."""
    await register(client, email=EMAIL)
    pair = await login(client)
    token = await INVALID[kind](client, mailbox, pair)
    response = await _verify(client, token)
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_verification_token"
    me = await client.get("/users/me", headers=bearer(pair))
    assert me.json()["email_verified"] is False


async def test_an_expired_verification_token_answers_400(
    client: httpx.AsyncClient, services: Services, mailbox: Mailbox, clock: ManualClock
) -> None:
    """Past GATEHOUSE_VERIFY_TOKEN_TTL the link no longer verifies."""
    await register(client, email=EMAIL)
    pair = await login(client)
    token = await _request(client, mailbox, pair)
    clock.advance(services.settings.verify_token_ttl + timedelta(seconds=1))
    response = await _verify(client, token)
    assert response.json()["code"] == "invalid_verification_token"


@pytest.mark.parametrize("body", [{}, {"token": ""}])
async def test_a_missing_or_empty_verification_token_is_422(
    client: httpx.AsyncClient, body: dict[str, str]
) -> None:
    """No token, or an empty one: 422 validation_failed."""
    response = await client.post("/auth/verify", json=body)
    assert response.status_code == 422


async def test_requesting_without_an_address_answers_409_email_missing(
    client: httpx.AsyncClient,
) -> None:
    """An account without an address has nothing to verify: 409 email_missing."""
    pair = await signup(client)
    response = await client.post("/auth/verify/request", headers=bearer(pair))
    assert response.status_code == 409
    assert response.json()["code"] == "email_missing"


async def test_requesting_for_a_verified_address_answers_409_and_sends_nothing(
    client: httpx.AsyncClient, services: Services, mailbox: Mailbox
) -> None:
    """Once verified, another request: 409 email_already_verified, no second mail."""
    await register(client, email=EMAIL)
    pair = await login(client)
    assert (await _verify(client, await _request(client, mailbox, pair))).status_code == 204
    response = await client.post("/auth/verify/request", headers=bearer(pair))
    assert response.status_code == 409
    assert response.json()["code"] == "email_already_verified"
    await drained(services)
    assert mailbox.count() == 1


async def test_requesting_needs_a_credential(client: httpx.AsyncClient) -> None:
    """No bearer token: 401."""
    response = await client.post("/auth/verify/request")
    assert response.status_code == 401


async def test_an_api_key_of_the_user_may_request_the_mail(
    client: httpx.AsyncClient, mailbox: Mailbox
) -> None:
    """Any credential of the user will do: the mail only ever goes to their own address."""
    await register(client, email=EMAIL)
    pair = await login(client)
    created = await client.post("/users/me/api-keys", json={"name": "ci"}, headers=bearer(pair))
    response = await client.post(
        "/auth/verify/request", headers={"X-API-Key": created.json()["key"]}
    )
    assert response.status_code == 202
    (message,) = await mailbox.wait_for(1)
    assert message["To"] == EMAIL


async def test_registration_sends_no_mail_unless_verify_on_register(
    client: httpx.AsyncClient, services: Services
) -> None:
    """By default a new account with an address gets no mail: nothing is queued."""
    await register(client, email=EMAIL)
    assert await services.outbox.depth() == 0


async def test_verify_on_register_mails_a_link_to_each_new_address(
    database_url: str, tmp_path: Path, mailbox: Mailbox, clock: ManualClock
) -> None:
    """GATEHOUSE_VERIFY_ON_REGISTER=true: registering with an address mails a verification
    link that works; registering without one sends nothing."""
    settings = mail_settings(database_url, tmp_path, mailbox, verify_on_register=True)
    async with serving(settings, clock) as (services, client):
        await register(client, "nomail")
        await register(client, email=EMAIL)
        (message,) = await mailbox.wait_for(1)
        assert message["To"] == EMAIL
        assert (await _verify(client, token_in(message))).status_code == 204
        await drained(services)
        assert mailbox.count() == 1


async def test_verification_requests_are_limited_per_client_address(
    database_url: str, tmp_path: Path, mailbox: Mailbox, clock: ManualClock
) -> None:
    """Past GATEHOUSE_RECOVERY_IP_LIMIT requests: 429 rate_limited."""
    settings = mail_settings(database_url, tmp_path, mailbox, recovery_ip_limit=1)
    async with serving(settings, clock) as (_, client):
        await register(client, email=EMAIL)
        pair = await login(client)
        assert (await client.post("/auth/verify/request", headers=bearer(pair))).status_code == 202
        refused = await client.post("/auth/verify/request", headers=bearer(pair))
    assert refused.status_code == 429
    assert refused.json()["code"] == "rate_limited"
