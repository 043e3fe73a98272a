"""Password reset over HTTP, with mail through a real local SMTP server (aiosmtpd)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx
import pytest
import sqlalchemy as sa

from gatehouse.server.accounts.models import UserChanges
from gatehouse.server.clock import ManualClock
from gatehouse.server.config import Settings
from gatehouse.server.storage.tables import account_tokens
from gatehouse.server.wiring import Services, build_services
from tests.conftest import truncate_all
from tests.http.helpers import PASSWORD, bearer, login, register
from tests.http.mail import (
    Mailbox,
    drained,
    html_of,
    link_in,
    mail_settings,
    reset_mail,
    serving,
    text_of,
)
from tests.http.mail_fixtures import mail_settings_fixture, mailbox_fixture  # noqa: F401 - pytest fixtures

NEW_PASSWORD = "a brand new passphrase"
EMAIL = "alice@example.com"


async def _reset(
    client: httpx.AsyncClient, token: str, password: str = NEW_PASSWORD
) -> httpx.Response:
    return await client.post(
        "/auth/password/reset", json={"token": token, "new_password": password}
    )


async def test_forgot_answers_202_with_one_body_whether_or_not_an_account_has_the_address(
    client: httpx.AsyncClient, services: Services, mailbox: Mailbox
) -> None:
    """Known address, unknown address, and a known one in other case: the same 202 and the
    same body; only the account's address receives a mail (one per known request)."""
    await register(client, email=EMAIL)
    answers = [
        await client.post("/auth/password/forgot", json={"email": address})
        for address in (EMAIL, "nobody@example.com", "ALICE@Example.COM")
    ]
    assert {a.status_code for a in answers} == {202}
    assert len({a.content for a in answers}) == 1
    assert set(answers[0].json()) == {"status", "detail"}
    # The same headers too, but for the two that differ on every answer.
    varying = {"date", "x-request-id"}
    headers = [sorted((k, v) for k, v in a.headers.items() if k not in varying) for a in answers]
    assert headers[0] == headers[1] == headers[2]
    await drained(services)
    assert mailbox.count() == 2
    assert mailbox.recipients == [[EMAIL], [EMAIL]]


async def test_the_reset_mail_links_to_the_reset_page_with_a_single_use_token(
    client: httpx.AsyncClient, mailbox: Mailbox
) -> None:
    """The message is multipart plain text + HTML from gatehouse@<issuer host> to the
    account's address; the link is <issuer>/reset-password?token=ghr_<43 chars>."""
    await register(client, email=EMAIL)
    await client.post("/auth/password/forgot", json={"email": EMAIL})
    (message,) = await mailbox.wait_for(1)
    assert message["From"] == "gatehouse@auth.example.test"
    assert message["To"] == EMAIL
    assert message.get_content_type() == "multipart/alternative"
    link = link_in(message)
    assert link.startswith("https://auth.example.test/reset-password?token=ghr_")
    assert len(link.rsplit("=", 1)[1]) == 4 + 43
    assert link in html_of(message)
    assert "30 minutes" in text_of(message)


async def test_every_value_put_into_the_html_mail_is_escaped(
    client: httpx.AsyncClient, mailbox: Mailbox
) -> None:
    """A username with HTML characters appears escaped in the HTML part, as is in the text."""
    await register(client, "o'neil&<b>", email=EMAIL)
    await client.post("/auth/password/forgot", json={"email": EMAIL})
    (message,) = await mailbox.wait_for(1)
    assert "o&#x27;neil&amp;&lt;b&gt;" in html_of(message)
    assert "<b>" not in html_of(message)
    assert "o'neil&<b>" in text_of(message)


async def test_a_reset_sets_the_password_and_ends_every_session(
    client: httpx.AsyncClient, mailbox: Mailbox
) -> None:
    """After a reset: the old password fails, the new one logs in, and every session that
    existed (access and refresh tokens alike) is refused."""
    await register(client, email=EMAIL)
    sessions = [await login(client), await login(client)]
    token = await reset_mail(client, mailbox, EMAIL)
    response = await _reset(client, token)
    assert response.status_code == 204
    for pair in sessions:
        assert (await client.get("/users/me", headers=bearer(pair))).status_code == 401
        refreshed = await client.post(
            "/auth/refresh", json={"refresh_token": pair["refresh_token"]}
        )
        assert refreshed.status_code == 401
    old = await client.post("/auth/login", json={"username": "alice", "password": PASSWORD})
    assert old.status_code == 401
    await login(client, password=NEW_PASSWORD)


async def test_two_resets_with_one_token_at_once_succeed_exactly_once(
    client: httpx.AsyncClient, mailbox: Mailbox
) -> None:
    """The same token sent twice at the same moment (both looked up before either is
    used): one 204, one 400 invalid_reset_token, and the winner's password is the one set."""
    await register(client, email=EMAIL)
    token = await reset_mail(client, mailbox, EMAIL)
    passwords = ("the first new passphrase", "the second new passphrase")
    answers = await asyncio.gather(*(_reset(client, token, p) for p in passwords))
    assert sorted(a.status_code for a in answers) == [204, 400]
    winner, loser = (0, 1) if answers[0].status_code == 204 else (1, 0)
    assert answers[loser].json()["code"] == "invalid_reset_token"
    await login(client, password=passwords[winner])
    refused = await client.post(
        "/auth/login", json={"username": "alice", "password": passwords[loser]}
    )
    assert refused.status_code == 401


async def test_a_reset_unlocks_a_name_held_locked(
    client: httpx.AsyncClient, mailbox: Mailbox, settings: Settings
) -> None:
    """Someone keeps alice locked with wrong passwords; her reset link (proof of the
    mailbox) lets her log in with the new password at once, lock or not."""
    await register(client, email=EMAIL)
    for _ in range(settings.lockout_threshold):
        await client.post("/auth/login", json={"username": "alice", "password": "wrong guess"})
    locked = await client.post("/auth/login", json={"username": "alice", "password": PASSWORD})
    assert locked.status_code == 429
    assert locked.json()["code"] == "account_locked"
    token = await reset_mail(client, mailbox, EMAIL)
    assert (await _reset(client, token)).status_code == 204
    await login(client, password=NEW_PASSWORD)


async def _reused(
    client: httpx.AsyncClient, mailbox: Mailbox, clock: ManualClock, services: Services
) -> str:
    token = await reset_mail(client, mailbox, EMAIL)
    assert (await _reset(client, token)).status_code == 204
    return token


async def _expired(
    client: httpx.AsyncClient, mailbox: Mailbox, clock: ManualClock, services: Services
) -> str:
    token = await reset_mail(client, mailbox, EMAIL)
    clock.advance(services.settings.reset_token_ttl + timedelta(seconds=1))
    return token


async def _altered(
    client: httpx.AsyncClient, mailbox: Mailbox, clock: ManualClock, services: Services
) -> str:
    token = await reset_mail(client, mailbox, EMAIL)
    return token[:-1] + ("A" if token[-1] != "A" else "B")


async def _superseded(
    client: httpx.AsyncClient, mailbox: Mailbox, clock: ManualClock, services: Services
) -> str:
    first = await reset_mail(client, mailbox, EMAIL)
    await reset_mail(client, mailbox, EMAIL, nth=2)
    return first


async def _malformed(
    client: httpx.AsyncClient, mailbox: Mailbox, clock: ManualClock, services: Services
) -> str:
    return "ghr_not-a-token"


async def _access_token(
    client: httpx.AsyncClient, mailbox: Mailbox, clock: ManualClock, services: Services
) -> str:
    token: str = (await login(client))["access_token"]
    return token


async def _refresh_token(
    client: httpx.AsyncClient, mailbox: Mailbox, clock: ManualClock, services: Services
) -> str:
    token: str = (await login(client))["refresh_token"]
    return token


async def _api_key(
    client: httpx.AsyncClient, mailbox: Mailbox, clock: ManualClock, services: Services
) -> str:
    pair = await login(client)
    created = await client.post("/users/me/api-keys", json={"name": "ci"}, headers=bearer(pair))
    key: str = created.json()["key"]
    return key


async def _verification_token(
    client: httpx.AsyncClient, mailbox: Mailbox, clock: ManualClock, services: Services
) -> str:
    pair = await login(client)
    await client.post("/auth/verify/request", headers=bearer(pair))
    (message,) = await mailbox.wait_for(1)
    link = link_in(message)
    return link.rsplit("=", 1)[1]


INVALID_TOKENS: dict[str, Callable[..., Awaitable[str]]] = {
    "reused": _reused,
    "expired": _expired,
    "altered": _altered,
    "superseded": _superseded,
    "malformed": _malformed,
    "access token": _access_token,
    "refresh token": _refresh_token,
    "api key": _api_key,
    "verification token": _verification_token,
}


@pytest.mark.parametrize("kind", list(INVALID_TOKENS))
async def test_a_token_that_is_not_live_answers_400_invalid_reset_token(
    client: httpx.AsyncClient,
    mailbox: Mailbox,
    clock: ManualClock,
    services: Services,
    kind: str,
) -> None:
    """Reused, expired, altered in one character, superseded, malformed, or a credential of
    another kind: 400 invalid_reset_token, and the password stays as it was."""
    await register(client, email=EMAIL)
    token = await INVALID_TOKENS[kind](client, mailbox, clock, services)
    response = await _reset(client, token, "yet another passphrase")
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_reset_token"
    unchanged = await client.post(
        "/auth/login", json={"username": "alice", "password": "yet another passphrase"}
    )
    assert unchanged.status_code == 401


@pytest.mark.parametrize("body", [{}, {"token": ""}, {"new_password": NEW_PASSWORD}])
async def test_only_a_missing_or_empty_token_is_422(
    client: httpx.AsyncClient, body: dict[str, str]
) -> None:
    """No token, or an empty one: 422 validation_failed naming the field."""
    response = await client.post(
        "/auth/password/reset", json={"new_password": NEW_PASSWORD, **body}
    )
    assert response.status_code == 422
    assert "token" in {e["field"] for e in response.json()["errors"]}


async def test_a_weak_new_password_is_refused_and_leaves_the_token_live(
    client: httpx.AsyncClient, mailbox: Mailbox
) -> None:
    """422 weak_password with the policy's reason; the same token then sets a good one."""
    await register(client, email=EMAIL)
    token = await reset_mail(client, mailbox, EMAIL)
    weak = await _reset(client, token, "password123")
    assert weak.status_code == 422
    assert weak.json()["code"] == "weak_password"
    assert "too common" in weak.json()["errors"][0]["reason"]
    assert (await _reset(client, token)).status_code == 204


async def test_a_password_change_ends_the_live_reset_tokens(
    client: httpx.AsyncClient, mailbox: Mailbox
) -> None:
    """A token mailed before the user changed the password no longer works."""
    await register(client, email=EMAIL)
    pair = await login(client)
    token = await reset_mail(client, mailbox, EMAIL)
    changed = await client.post(
        "/users/me/password",
        json={"current_password": PASSWORD, "new_password": NEW_PASSWORD},
        headers=bearer(pair),
    )
    assert changed.status_code == 204
    response = await _reset(client, token, "yet another passphrase")
    assert response.json()["code"] == "invalid_reset_token"


async def test_a_reset_ends_the_users_other_reset_tokens(
    client: httpx.AsyncClient, services: Services, mailbox: Mailbox
) -> None:
    """After a reset no reset token of the user is live (none can undo it)."""
    await register(client, email=EMAIL)
    token = await reset_mail(client, mailbox, EMAIL)
    assert (await _reset(client, token)).status_code == 204
    async with services.db.read() as conn:
        live = (
            await conn.execute(
                sa.select(sa.func.count())
                .select_from(account_tokens)
                .where(account_tokens.c.used_at.is_(None))
            )
        ).scalar_one()
    assert live == 0


async def test_two_workers_resolving_two_requests_at_once_leave_one_live_token(
    database_url: str, tmp_path: Path, clock: ManualClock, mailbox: Mailbox
) -> None:
    """Two forgot requests for one address, resolved by two processes' outbox workers with
    overlapping transactions (the second runs while the first has inserted its token but
    not committed): each mints a token, and only one stays live, the other superseded."""
    settings = mail_settings(database_url, tmp_path, mailbox)
    first = build_services(settings, clock=clock)
    second = build_services(settings, clock=clock)
    other: asyncio.Task[int] | None = None
    try:
        await truncate_all(first.db)
        await first.accounts.register("alice", PASSWORD, email=EMAIL)

        async def overlap(conn: Any) -> None:
            # Just before the first worker's token transaction commits, the second worker
            # resolves the other request (given a second to do so before the commit).
            nonlocal other
            if other is not None:
                return
            count = sa.select(sa.func.count()).select_from(account_tokens)
            if not (await conn.execute(count)).scalar_one():
                return
            other = asyncio.create_task(second.outbox.process_due())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(other), 1.0)

        first.db.on_commit(overlap)
        for _ in range(2):
            await first.recovery.forgot(EMAIL, ip="203.0.113.7")
        await first.outbox.process_due()
        assert other is not None
        await other
        async with first.db.read() as conn:
            tokens = (await conn.execute(sa.select(account_tokens))).all()
        assert len(tokens) == 2
        assert sum(1 for t in tokens if t.used_at is None) == 1
    finally:
        await first.close()
        await second.close()


async def test_tokens_are_stored_only_as_digests(
    client: httpx.AsyncClient, services: Services, mailbox: Mailbox
) -> None:
    """The account_tokens row holds a 32-byte digest; no column holds the token."""
    await register(client, email=EMAIL)
    token = await reset_mail(client, mailbox, EMAIL)
    async with services.db.read() as conn:
        rows = (await conn.execute(sa.select(account_tokens))).all()
    assert len(rows) == 1
    assert len(rows[0].digest) == 32
    assert all(token not in str(value) for value in rows[0])
    assert token.encode() not in rows[0].digest


async def test_a_known_address_gets_at_most_three_mails_per_15_minutes(
    client: httpx.AsyncClient, services: Services, mailbox: Mailbox, clock: ManualClock
) -> None:
    """Four requests in a row: three mails, each answered 202 alike; 15 minutes later the
    address gets mail again."""
    await register(client, email=EMAIL)
    for _ in range(4):
        response = await client.post("/auth/password/forgot", json={"email": EMAIL})
        assert response.status_code == 202
    await drained(services)
    assert mailbox.count() == 3
    clock.advance(timedelta(minutes=15, seconds=1))
    await client.post("/auth/password/forgot", json={"email": EMAIL})
    await mailbox.wait_for(4)


async def test_an_inactive_account_gets_no_reset_mail(
    client: httpx.AsyncClient, services: Services, mailbox: Mailbox
) -> None:
    """A deactivated user's address is answered 202 like any, and nothing is sent."""
    user = await register(client, email=EMAIL)
    await services.admin.update_user(None, UUID(user["id"]), UserChanges(is_active=False))
    response = await client.post("/auth/password/forgot", json={"email": EMAIL})
    assert response.status_code == 202
    await drained(services)
    assert mailbox.count() == 0


async def test_forgot_is_limited_per_client_address(
    database_url: str, tmp_path: Path, mailbox: Mailbox, clock: ManualClock
) -> None:
    """Past GATEHOUSE_RECOVERY_IP_LIMIT requests from one address: 429 rate_limited with
    Retry-After, known address or not."""
    settings = mail_settings(database_url, tmp_path, mailbox, recovery_ip_limit=2)
    async with serving(settings, clock) as (_, client):
        for _ in range(2):
            ok = await client.post("/auth/password/forgot", json={"email": "x@example.com"})
            assert ok.status_code == 202
        refused = await client.post("/auth/password/forgot", json={"email": "y@example.com"})
    assert refused.status_code == 429
    assert refused.json()["code"] == "rate_limited"
    assert int(refused.headers["retry-after"]) >= 1


async def test_guessing_reset_tokens_is_limited_per_client_address(
    database_url: str, tmp_path: Path, mailbox: Mailbox, clock: ManualClock
) -> None:
    """Each token that is not live counts as a failed attempt of the address: past
    GATEHOUSE_IP_FAILURE_LIMIT, 429 rate_limited, even for a live token."""
    settings = mail_settings(database_url, tmp_path, mailbox, ip_failure_limit=3)
    async with serving(settings, clock) as (_, client):
        await register(client, email=EMAIL)
        token = await reset_mail(client, mailbox, EMAIL)
        for _ in range(3):
            wrong = await _reset(client, "ghr_" + "x" * 43)
            assert wrong.status_code == 400
        refused = await _reset(client, token)
        assert refused.status_code == 429
        assert refused.json()["code"] == "rate_limited"
