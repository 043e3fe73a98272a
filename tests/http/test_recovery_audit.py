"""The audit trail of recovery: reset requested and done, verification, address and password
changes; with the request's origin, and never a token or an address in any column."""

from __future__ import annotations

import httpx
import pytest

from gatehouse.server.wiring import Services
from tests.http.helpers import PASSWORD, admin_pair, bearer, login, register
from tests.http.mail import Mailbox, drained, reset_mail, token_in
from tests.http.mail_fixtures import mail_settings_fixture, mailbox_fixture  # noqa: F401 - pytest fixtures
from tests.http.trail import events, one, stored_text

EMAIL = "alice@example.com"
NEW_PASSWORD = "a brand new passphrase"


async def test_a_reset_records_the_request_and_the_reset_with_the_requests_origin(
    client: httpx.AsyncClient, services: Services, mailbox: Mailbox
) -> None:
    """password.reset_requested (written by the outbox worker, yet with the address and
    request id of the forgot request) and password.reset, both about the user; the
    token appears in no stored event."""
    user = await register(client, email=EMAIL)
    admin = await admin_pair(client, services)
    forgot = await client.post(
        "/auth/password/forgot", json={"email": EMAIL}, headers={"X-Request-ID": "forgot-1"}
    )
    assert forgot.status_code == 202
    token = token_in((await mailbox.wait_for(1))[0])
    reset = await client.post(
        "/auth/password/reset", json={"token": token, "new_password": NEW_PASSWORD}
    )
    assert reset.status_code == 204
    requested = await one(client, admin, services, "password.reset_requested")
    assert requested["subject"] == {"kind": "user", "id": user["id"]}
    assert requested["ip"] == "203.0.113.7"
    assert requested["request_id"] == "forgot-1"
    done = await one(client, admin, services, "password.reset")
    assert done["subject"] == {"kind": "user", "id": user["id"]}
    assert done["outcome"] == "success"
    stored = await stored_text(services)
    assert token not in stored
    assert EMAIL not in stored


async def test_a_forgot_request_for_an_unknown_address_records_no_reset_request(
    client: httpx.AsyncClient, services: Services
) -> None:
    """No account, no token: no password.reset_requested event."""
    admin = await admin_pair(client, services)
    await client.post("/auth/password/forgot", json={"email": "nobody@example.com"})
    await drained(services)
    assert await events(client, admin, services, type="password.reset_requested") == []


async def test_an_invalid_reset_token_is_recorded_as_a_failure(
    client: httpx.AsyncClient, services: Services
) -> None:
    """A refused reset is a password.reset failure with the error code as its reason."""
    admin = await admin_pair(client, services)
    await client.post(
        "/auth/password/reset", json={"token": "ghr_" + "x" * 43, "new_password": NEW_PASSWORD}
    )
    failed = await one(client, admin, services, "password.reset")
    assert failed["outcome"] == "failure"
    assert failed["detail"] == {"reason": "invalid_reset_token"}


async def test_verification_address_and_password_changes_are_recorded(
    client: httpx.AsyncClient, services: Services, mailbox: Mailbox
) -> None:
    """email.verification_requested and email.verified, email.changed and password.changed,
    each about the user and by the user."""
    user = await register(client, email=EMAIL)
    admin = await admin_pair(client, services)
    pair = await login(client)
    await client.post("/auth/verify/request", headers=bearer(pair))
    token = token_in((await mailbox.wait_for(1))[0])
    assert (await client.post("/auth/verify", json={"token": token})).status_code == 204
    await client.patch(
        "/users/me",
        json={"email": "alice@elsewhere.example", "current_password": PASSWORD},
        headers=bearer(pair),
    )
    await client.post(
        "/users/me/password",
        json={"current_password": PASSWORD, "new_password": NEW_PASSWORD},
        headers=bearer(pair),
    )
    me = {"kind": "user", "id": user["id"]}
    for event_type in (
        "email.verification_requested",
        "email.verified",
        "email.changed",
        "password.changed",
    ):
        event = await one(client, admin, services, event_type)
        assert event["subject"] == me, event_type
        assert event["actor"]["id"] == user["id"], event_type
    assert "alice@elsewhere.example" not in await stored_text(services)


async def test_the_reset_token_of_a_known_address_is_not_in_the_log_either(
    client: httpx.AsyncClient,
    services: Services,
    mailbox: Mailbox,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Whatever the server logs while resolving and sending a reset names neither the
    token nor the address."""
    await register(client, email=EMAIL)
    with caplog.at_level("DEBUG", logger="gatehouse"):
        token = await reset_mail(client, mailbox, EMAIL)
        await drained(services)
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert token not in logged
    assert EMAIL not in logged
