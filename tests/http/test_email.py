"""Email addresses: unique case-insensitively, changed only with the current password."""

from __future__ import annotations

import asyncio

import httpx
import pytest
import sqlalchemy as sa

from gatehouse.server.accounts.emails import canonical_email
from gatehouse.server.errors import InvalidEmailError
from gatehouse.server.storage.tables import users
from gatehouse.server.wiring import Services
from tests.http.helpers import PASSWORD, admin_pair, bearer, login, register, signup
from tests.http.mail import Mailbox, token_in
from tests.http.mail_fixtures import mail_settings_fixture, mailbox_fixture  # noqa: F401 - pytest fixtures

EMAIL = "alice@example.com"


async def _verified(client: httpx.AsyncClient, mailbox: Mailbox, pair: dict[str, str]) -> None:
    """Verify the caller's address through the real flow."""
    before = mailbox.count()
    assert (await client.post("/auth/verify/request", headers=bearer(pair))).status_code == 202
    message = (await mailbox.wait_for(before + 1))[before]
    response = await client.post("/auth/verify", json={"token": token_in(message)})
    assert response.status_code == 204


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("Alice@Example.com", "alice@example.com"),
        ("alice@example.com", "ALICE@EXAMPLE.COM"),
        ("straße@example.com", "STRASSE@example.com"),
        ("bob@xn--mnchen-3ya.de", "Bob@MÜNCHEN.de"),
    ],
)
def test_addresses_differing_in_case_or_idna_form_are_one(first: str, second: str) -> None:
    """The canonical forms of the two addresses are equal; the stored forms keep the case."""
    assert canonical_email(first)[1] == canonical_email(second)[1]
    assert canonical_email(first)[0].split("@")[0] == first.split("@", maxsplit=1)[0]


@pytest.mark.parametrize(
    "raw", ["", "no-at-sign", "a@[127.0.0.1]", "a@b", "x" * 250 + "@example.com"]
)
def test_invalid_addresses_are_refused(raw: str) -> None:
    """Not an address (or too long to receive mail): InvalidEmailError on `email`."""
    with pytest.raises(InvalidEmailError) as raised:
        canonical_email(raw)
    assert raised.value.field == "email"


async def test_registering_a_taken_address_in_another_case_answers_409_email_taken(
    client: httpx.AsyncClient,
) -> None:
    """The second account with ALICE@example.COM is refused; the first keeps its spelling."""
    first = await register(client, "alice", email="Alice@Example.com")
    assert first["email"] == "Alice@example.com"
    response = await client.post(
        "/auth/register",
        json={"username": "mallory", "password": PASSWORD, "email": "ALICE@example.COM"},
    )
    assert response.status_code == 409
    assert response.json()["code"] == "email_taken"


async def test_two_registrations_with_one_address_at_once_make_one_account(
    client: httpx.AsyncClient, services: Services
) -> None:
    """Concurrent registrations of different names with one address: one 201, one 409
    email_taken, one row holding the address."""
    attempts = [
        client.post(
            "/auth/register",
            json={"username": name, "password": PASSWORD, "email": address},
        )
        for name, address in (("alice", "race@example.com"), ("bob", "RACE@example.com"))
    ]
    responses = await asyncio.gather(*attempts)
    assert sorted(r.status_code for r in responses) == [201, 409]
    refused = next(r for r in responses if r.status_code == 409)
    assert refused.json()["code"] == "email_taken"
    async with services.db.read() as conn:
        count = (
            await conn.execute(
                sa.select(sa.func.count())
                .select_from(users)
                .where(users.c.email_canonical == "race@example.com")
            )
        ).scalar_one()
    assert count == 1


async def test_admin_creating_a_user_with_a_taken_address_gets_409(
    client: httpx.AsyncClient, services: Services
) -> None:
    """POST /admin/users with another account's address: 409 email_taken."""
    admin = await admin_pair(client, services)
    await register(client, email=EMAIL)
    response = await client.post(
        "/admin/users",
        json={"username": "carol", "password": PASSWORD, "email": "ALICE@example.com"},
        headers=bearer(admin),
    )
    assert response.status_code == 409
    assert response.json()["code"] == "email_taken"


async def test_admin_changing_a_users_address_to_a_taken_one_gets_409(
    client: httpx.AsyncClient, services: Services
) -> None:
    """PATCH /admin/users/{id} with another account's address: 409 email_taken."""
    admin = await admin_pair(client, services)
    await register(client, email=EMAIL)
    bob = await register(client, "bob")
    response = await client.patch(
        f"/admin/users/{bob['id']}", json={"email": "Alice@Example.com"}, headers=bearer(admin)
    )
    assert response.status_code == 409
    assert response.json()["code"] == "email_taken"


async def test_me_reports_whether_the_address_is_verified(client: httpx.AsyncClient) -> None:
    """A new account's /users/me has `email_verified: false`."""
    await register(client, email=EMAIL)
    pair = await login(client)
    me = (await client.get("/users/me", headers=bearer(pair))).json()
    assert me["email"] == EMAIL
    assert me["email_verified"] is False


@pytest.mark.parametrize("password", [None, "not the password"])
async def test_changing_the_address_needs_the_current_password(
    client: httpx.AsyncClient, password: str | None
) -> None:
    """Without `current_password`, or with a wrong one: 401 invalid_credentials, and the
    address stays."""
    await register(client, email=EMAIL)
    pair = await login(client)
    body: dict[str, object] = {"email": "new@example.com"}
    if password is not None:
        body["current_password"] = password
    response = await client.patch("/users/me", json=body, headers=bearer(pair))
    assert response.status_code == 401
    assert response.json()["code"] == "invalid_credentials"
    assert (await client.get("/users/me", headers=bearer(pair))).json()["email"] == EMAIL


async def test_removing_the_address_needs_the_current_password(client: httpx.AsyncClient) -> None:
    """`email: null` without the password: 401; with it: the address is gone."""
    await register(client, email=EMAIL)
    pair = await login(client)
    refused = await client.patch("/users/me", json={"email": None}, headers=bearer(pair))
    assert refused.status_code == 401
    done = await client.patch(
        "/users/me", json={"email": None, "current_password": PASSWORD}, headers=bearer(pair)
    )
    assert done.status_code == 200
    assert done.json()["email"] is None


async def test_a_new_address_clears_verification_and_the_same_one_keeps_it(
    client: httpx.AsyncClient, mailbox: Mailbox
) -> None:
    """Verified, then set again in another case (no password needed): still verified; then
    changed to another address (with the password): not verified."""
    await register(client, email=EMAIL)
    pair = await login(client)
    await _verified(client, mailbox, pair)
    same = await client.patch(
        "/users/me", json={"email": "ALICE@example.com"}, headers=bearer(pair)
    )
    assert same.status_code == 200
    assert same.json()["email_verified"] is True
    other = await client.patch(
        "/users/me",
        json={"email": "alice@elsewhere.example", "current_password": PASSWORD},
        headers=bearer(pair),
    )
    assert other.status_code == 200
    assert other.json()["email"] == "alice@elsewhere.example"
    assert other.json()["email_verified"] is False


@pytest.mark.parametrize(
    ("held", "swapped"),
    [("bob@strasse.de", "bob@straße.de"), ("fish@example.com", "\ufb01sh@example.com")],
)
async def test_an_address_that_only_folds_to_the_same_one_is_a_change(
    client: httpx.AsyncClient, mailbox: Mailbox, held: str, swapped: str
) -> None:
    """`straße.de` is another domain than `strasse.de` (and `\ufb01` another local part than
    `fi`), though they fold to one canonical address: swapping needs the current password
    (a stolen session must not redirect the reset mails) and the new one is unverified."""
    await register(client, email=held)
    pair = await login(client)
    await _verified(client, mailbox, pair)
    refused = await client.patch("/users/me", json={"email": swapped}, headers=bearer(pair))
    assert refused.status_code == 401
    assert refused.json()["code"] == "invalid_credentials"
    changed = await client.patch(
        "/users/me", json={"email": swapped, "current_password": PASSWORD}, headers=bearer(pair)
    )
    assert changed.status_code == 200
    assert changed.json()["email"] == swapped
    assert changed.json()["email_verified"] is False


async def test_changing_to_a_taken_address_answers_409(client: httpx.AsyncClient) -> None:
    """PATCH /users/me with another account's address (any case): 409 email_taken."""
    await register(client, "bob", email="bob@example.com")
    pair = await signup(client)
    response = await client.patch(
        "/users/me",
        json={"email": "BOB@example.com", "current_password": PASSWORD},
        headers=bearer(pair),
    )
    assert response.status_code == 409
    assert response.json()["code"] == "email_taken"


async def test_probing_addresses_through_the_profile_is_held_to_the_registration_limit(
    client: httpx.AsyncClient, services: Services
) -> None:
    """Each PATCH /users/me that sets an address counts like a registration from the client
    address: past REGISTER_IP_LIMIT the 409s stop and 429 rate_limited answers instead."""
    await register(client, "bob", email="bob@example.com")
    pair = await signup(client)  # two registrations so far
    limit = services.settings.register_ip_limit
    probe = {"email": "BOB@example.com", "current_password": PASSWORD}
    statuses = [
        (await client.patch("/users/me", json=probe, headers=bearer(pair))).status_code
        for _ in range(limit - 1)
    ]
    assert statuses == [409] * (limit - 2) + [429]


async def test_a_wrong_password_sent_with_an_unchanged_address_is_still_refused(
    client: httpx.AsyncClient,
) -> None:
    """A sent `current_password` is always checked: a wrong one is 401 even when nothing
    would change (so the route cannot be used to test passwords for free)."""
    await register(client, email=EMAIL)
    pair = await login(client)
    response = await client.patch(
        "/users/me", json={"email": EMAIL, "current_password": "wrong guess"}, headers=bearer(pair)
    )
    assert response.status_code == 401


async def test_a_changed_address_ends_the_reset_links_mailed_to_the_old_one(
    client: httpx.AsyncClient, mailbox: Mailbox
) -> None:
    """A reset token mailed before the address changed answers 400 invalid_reset_token."""
    await register(client, email=EMAIL)
    pair = await login(client)
    await client.post("/auth/password/forgot", json={"email": EMAIL})
    (message,) = await mailbox.wait_for(1)
    changed = await client.patch(
        "/users/me",
        json={"email": "new@example.com", "current_password": PASSWORD},
        headers=bearer(pair),
    )
    assert changed.status_code == 200
    response = await client.post(
        "/auth/password/reset",
        json={"token": token_in(message), "new_password": "a brand new passphrase"},
    )
    assert response.json()["code"] == "invalid_reset_token"
