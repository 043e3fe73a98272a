"""API keys through the real app: issue, use, scope, expire, revoke; service accounts."""

from __future__ import annotations

import asyncio
import re
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from gatehouse.server.clock import ManualClock
from gatehouse.server.storage.tables import api_keys
from gatehouse.server.wiring import Services
from tests.http.helpers import PASSWORD, admin_pair, bearer, login, register, signup

KEY_SHAPE = re.compile(r"ghk_([A-Za-z0-9]{16})_([A-Za-z0-9]{32})")
RECORD_FIELDS = {
    "id", "name", "prefix", "client_id", "owner_id", "scopes", "created_at", "last_used_at",
    "expires_at",
}  # fmt: skip


async def create_key(
    client: httpx.AsyncClient, pair: dict[str, Any], **body: Any
) -> dict[str, Any]:
    response = await client.post(
        "/users/me/api-keys", json={"name": "ci", **body}, headers=bearer(pair)
    )
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def key_header(key: str) -> dict[str, str]:
    return {"X-API-Key": key}


async def test_a_new_key_is_shown_once_and_stored_as_a_digest(
    client: httpx.AsyncClient, services: Services
) -> None:
    """201 with the record and `key` (ghk_<16 alnum>_<32 alnum>); the list shows the record
    without the key; the database holds a 32-byte digest and no column holds the secret."""
    pair = await signup(client)
    created = await create_key(client, pair, name="deploy bot")
    match = KEY_SHAPE.fullmatch(created["key"])
    assert match is not None, created["key"]
    assert set(created) == RECORD_FIELDS | {"key"}
    assert created["prefix"] == "ghk"
    assert created["client_id"] == f"ghk_{match.group(1)}"
    assert created["scopes"] == ["user"]
    assert created["last_used_at"] is None

    listed = await client.get("/users/me/api-keys", headers=bearer(pair))
    assert listed.status_code == 200
    assert [set(k) for k in listed.json()] == [RECORD_FIELDS]
    assert match.group(2) not in listed.text

    async with services.db.read() as conn:
        row = (await conn.execute(sa.select(api_keys))).one()
    assert len(row.digest) == 32
    assert all(match.group(2) not in str(value) for value in row)


@pytest.mark.parametrize("transport", ["bearer", "x-api-key"])
async def test_a_key_authenticates_as_its_owner(client: httpx.AsyncClient, transport: str) -> None:
    """`Authorization: Bearer <key>` and `X-API-Key: <key>` both reach /users/me as the owner."""
    pair = await signup(client)
    key = (await create_key(client, pair))["key"]
    headers = bearer(key) if transport == "bearer" else key_header(key)
    me = await client.get("/users/me", headers=headers)
    assert me.status_code == 200, me.text
    assert me.json()["username"] == "alice"


async def test_a_revoked_key_stops_at_once_and_others_keys_are_404(
    client: httpx.AsyncClient,
) -> None:
    """DELETE revokes the caller's own key (401 on its next use); bob reading or revoking alice's
    key id, or any unknown id, gets 404 and changes nothing."""
    alice = await signup(client)
    key = await create_key(client, alice)
    bob = await signup(client, "bob")
    own = await client.get(f"/users/me/api-keys/{key['id']}", headers=bearer(alice))
    assert own.status_code == 200
    assert own.json()["name"] == key["name"]
    peeked = await client.get(f"/users/me/api-keys/{key['id']}", headers=bearer(bob))
    assert peeked.status_code == 404
    stolen = await client.delete(f"/users/me/api-keys/{key['id']}", headers=bearer(bob))
    assert stolen.status_code == 404
    assert (await client.get("/users/me", headers=key_header(key["key"]))).status_code == 200

    revoked = await client.delete(f"/users/me/api-keys/{key['id']}", headers=bearer(alice))
    assert revoked.status_code == 204
    refused = await client.get("/users/me", headers=key_header(key["key"]))
    assert refused.status_code == 401
    assert refused.json()["code"] == "invalid_token"
    again = await client.delete(f"/users/me/api-keys/{key['id']}", headers=bearer(alice))
    assert again.status_code == 404
    assert (await client.get("/users/me/api-keys", headers=bearer(alice))).json() == []


async def test_scopes_are_roles_of_the_owner(client: httpx.AsyncClient, services: Services) -> None:
    """Omitted scopes mean all the owner's roles; a role the owner lacks, or `introspect` from a
    non-admin, is 422 invalid_scope; an admin may add introspect."""
    pair = await signup(client)
    for scopes in (["admin"], ["user", "nope"], ["introspect"]):
        response = await client.post(
            "/users/me/api-keys", json={"name": "x", "scopes": scopes}, headers=bearer(pair)
        )
        assert response.status_code == 422, scopes
        assert response.json()["code"] == "invalid_scope"
    assert (await create_key(client, pair, scopes=[]))["scopes"] == []

    admin = await admin_pair(client, services)
    assert (await create_key(client, admin))["scopes"] == ["admin", "user"]
    with_introspect = await create_key(client, admin, scopes=["introspect"])
    assert with_introspect["scopes"] == ["introspect"]


async def test_an_admin_key_needs_the_admin_scope_on_admin_routes(
    client: httpx.AsyncClient, services: Services
) -> None:
    """An admin's key with `admin` lists users; one without it gets 403 insufficient_scope."""
    admin = await admin_pair(client, services)
    full = (await create_key(client, admin))["key"]
    narrow = (await create_key(client, admin, scopes=["user"]))["key"]
    assert (await client.get("/admin/users", headers=key_header(full))).status_code == 200
    refused = await client.get("/admin/users", headers=key_header(narrow))
    assert refused.status_code == 403
    assert refused.json()["code"] == "insufficient_scope"
    assert (await client.get("/users/me", headers=key_header(narrow))).status_code == 200


async def test_changing_the_owner_narrows_or_stops_the_key_at_once(
    client: httpx.AsyncClient, services: Services
) -> None:
    """Taking bob's admin role away makes his admin key 403 on admin routes on the next request;
    deactivating him makes it 401 everywhere."""
    root = await admin_pair(client, services)
    bob = await register(client, "bob")
    promote = await client.patch(
        f"/admin/users/{bob['id']}", json={"roles": ["admin", "user"]}, headers=bearer(root)
    )
    assert promote.status_code == 200
    key = (await create_key(client, await login(client, "bob")))["key"]
    assert (await client.get("/admin/users", headers=key_header(key))).status_code == 200

    demote = await client.patch(
        f"/admin/users/{bob['id']}", json={"roles": ["user"]}, headers=bearer(root)
    )
    assert demote.status_code == 200
    assert (await client.get("/admin/users", headers=key_header(key))).status_code == 403
    assert (await client.get("/users/me", headers=key_header(key))).status_code == 200

    off = await client.patch(
        f"/admin/users/{bob['id']}", json={"is_active": False}, headers=bearer(root)
    )
    assert off.status_code == 200
    assert (await client.get("/users/me", headers=key_header(key))).status_code == 401


async def test_expiry_is_a_future_rfc3339_instant_checked_to_the_second(
    client: httpx.AsyncClient, clock: ManualClock
) -> None:
    """A future instant with an offset is kept (to the second); the key works until then and
    answers 401 from that second on. Past or offset-less instants are 422."""
    pair = await signup(client)
    for bad in ((clock.now() - timedelta(seconds=1)).isoformat(), "2030-01-01T00:00:00", "soon"):
        response = await client.post(
            "/users/me/api-keys", json={"name": "x", "expires_at": bad}, headers=bearer(pair)
        )
        assert response.status_code == 422, bad
        assert bad not in response.text

    at = clock.now() + timedelta(hours=1, microseconds=500_000)
    created = await create_key(client, pair, expires_at=at.isoformat())
    expires = datetime.fromisoformat(created["expires_at"])
    assert expires == at.replace(microsecond=0)
    key = key_header(created["key"])
    clock.advance(expires - clock.now() - timedelta(milliseconds=1))
    assert (await client.get("/users/me", headers=key)).status_code == 200
    clock.advance(timedelta(milliseconds=1))
    assert (await client.get("/users/me", headers=key)).status_code == 401


async def _last_used(client: httpx.AsyncClient, pair: dict[str, Any]) -> str | None:
    await asyncio.sleep(0.05)  # the use is recorded in the background
    (record,) = (await client.get("/users/me/api-keys", headers=bearer(pair))).json()
    value: str | None = record["last_used_at"]
    return value


async def test_last_use_is_recorded_at_most_once_a_minute(
    client: httpx.AsyncClient, clock: ManualClock
) -> None:
    """The first use sets last_used_at; uses within the next minute leave it; a use after a
    minute moves it."""
    pair = await signup(client)
    key = key_header((await create_key(client, pair))["key"])
    await client.get("/users/me", headers=key)
    first = await _last_used(client, pair)
    assert first is not None
    clock.advance(timedelta(seconds=30))
    await client.get("/users/me", headers=key)
    assert await _last_used(client, pair) == first
    clock.advance(timedelta(seconds=31))
    await client.get("/users/me", headers=key)
    later = await _last_used(client, pair)
    assert later is not None
    assert datetime.fromisoformat(later) - datetime.fromisoformat(first) == timedelta(seconds=61)


@pytest.mark.parametrize(
    "credential",
    [
        "ghk_",
        "ghk_abc",
        "ghx_" + "a" * 16 + "_" + "b" * 32,
        "ghk_" + "a" * 16 + "_" + "b" * 31,
        "ghk_" + "a" * 16 + "_" + "b" * 32 + "_c",
        "ghk_" + "a" * 300,
        "ghk_" + "é" * 16 + "_" + "b" * 32,
        "ghk_" + "a" * 16 + "-" + "b" * 32,
    ],
)
async def test_malformed_keys_get_401_without_echo(
    client: httpx.AsyncClient, credential: str
) -> None:
    """Wrong prefix, missing or extra parts, over 256 characters, non-ASCII: 401, never echoed."""
    for headers in ({"X-API-Key": credential}, {"Authorization": f"Bearer {credential}"}):
        try:
            response = await client.get("/users/me", headers=headers)
        except UnicodeEncodeError:
            # httpx refuses to send non-ASCII header values; send them as raw bytes.
            raw = [(k.encode(), v.encode()) for k, v in headers.items()]
            response = await client.get("/users/me", headers=raw)
        assert response.status_code == 401, (credential, response.text)
        assert credential not in response.text
        assert response.json()["code"] == "invalid_token"


async def test_a_wrong_secret_and_an_unknown_id_get_the_same_answer(
    client: httpx.AsyncClient,
) -> None:
    """A valid key id with another secret, and a key id that does not exist: identical 401s."""
    pair = await signup(client)
    public_id = KEY_SHAPE.fullmatch((await create_key(client, pair))["key"]).group(1)  # type: ignore[union-attr]
    wrong = await client.get("/users/me", headers=key_header(f"ghk_{public_id}_{'x' * 32}"))
    unknown = await client.get("/users/me", headers=key_header(f"ghk_{'Z' * 16}_{'x' * 32}"))
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json() == unknown.json()
    assert wrong.headers["www-authenticate"] == unknown.headers["www-authenticate"]


async def test_a_key_cannot_change_the_account(client: httpx.AsyncClient) -> None:
    """With a key: no new keys, no key revocation, no password change, no profile change, no
    logout, no session revocation (403 session_required); reading is fine."""
    pair = await signup(client)
    created = await create_key(client, pair)
    key = key_header(created["key"])
    attempts = [
        client.post("/users/me/api-keys", json={"name": "more"}, headers=key),
        client.delete(f"/users/me/api-keys/{created['id']}", headers=key),
        client.post(
            "/users/me/password",
            json={"current_password": PASSWORD, "new_password": "another long passphrase"},
            headers=key,
        ),
        client.patch("/users/me", json={"email": "x@example.com"}, headers=key),
        client.post("/auth/logout", headers=key),
        client.post("/auth/logout-all", headers=key),
        client.delete(f"/users/me/sessions/{pair['session_id']}", headers=key),
    ]
    for response in [await a for a in attempts]:
        assert response.status_code == 403, response.request.url
        assert response.json()["code"] == "session_required"
    sessions = await client.get("/users/me/sessions", headers=key)
    assert sessions.status_code == 200
    assert [s["current"] for s in sessions.json()] == [False]
    assert len((await client.get("/users/me/api-keys", headers=key)).json()) == 1


async def test_service_accounts_hold_keys_and_cannot_log_in(
    client: httpx.AsyncClient, services: Services
) -> None:
    """POST /admin/users with service_account: true and no password makes a passwordless user;
    logging in as it fails like a wrong password; an admin-made key for it works."""
    admin = await admin_pair(client, services)
    created = await client.post(
        "/admin/users",
        json={"username": "ci-runner", "service_account": True, "roles": ["user", "deployer"]},
        headers=bearer(admin),
    )
    assert created.status_code == 201, created.text
    account = created.json()
    assert account["service_account"] is True
    assert account["roles"] == ["deployer", "user"]

    for password in ("", "!", PASSWORD):
        refused = await client.post(
            "/auth/login", json={"username": "ci-runner", "password": password or "x"}
        )
        assert refused.status_code == 401
        assert refused.json()["code"] == "invalid_credentials"

    issued = await client.post(
        "/admin/api-keys",
        json={"owner_id": account["id"], "name": "pipeline", "scopes": ["deployer"]},
        headers=bearer(admin),
    )
    assert issued.status_code == 201, issued.text
    me = await client.get("/users/me", headers=key_header(issued.json()["key"]))
    assert me.json()["username"] == "ci-runner"

    both = await client.post(
        "/admin/users",
        json={"username": "x", "service_account": True, "password": PASSWORD},
        headers=bearer(admin),
    )
    assert both.status_code == 422
    neither = await client.post("/admin/users", json={"username": "y"}, headers=bearer(admin))
    assert neither.status_code == 422


async def test_admins_page_through_every_key_and_revoke_any(
    client: httpx.AsyncClient, services: Services, clock: ManualClock
) -> None:
    """GET /admin/api-keys pages oldest first (owner_id filters); DELETE revokes anyone's key;
    non-admins get 403 and anonymous callers 401."""
    admin = await admin_pair(client, services)
    alice = await signup(client)
    mine = []
    for name in ("k0", "k1", "k2"):
        mine.append(await create_key(client, alice, name=name))
        clock.advance(timedelta(seconds=1))
    await create_key(client, admin, name="admin's")

    seen, cursor = [], None
    while True:
        params: dict[str, Any] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = await client.get("/admin/api-keys", params=params, headers=bearer(admin))
        assert page.status_code == 200, page.text
        seen += [k["name"] for k in page.json()["items"]]
        cursor = page.json()["next_cursor"]
        if cursor is None:
            break
    assert seen == ["k0", "k1", "k2", "admin's"]
    owned = await client.get(
        "/admin/api-keys",
        params={"owner_id": mine[0]["owner_id"]},
        headers=bearer(admin),
    )
    assert [k["name"] for k in owned.json()["items"]] == ["k0", "k1", "k2"]
    bad_cursor = await client.get("/admin/api-keys", params={"cursor": "@@"}, headers=bearer(admin))
    assert bad_cursor.status_code == 422

    assert (await client.get("/admin/api-keys", headers=bearer(alice))).status_code == 403
    assert (await client.get("/admin/api-keys")).status_code == 401
    revoked = await client.delete(f"/admin/api-keys/{mine[1]['id']}", headers=bearer(admin))
    assert revoked.status_code == 204
    assert (await client.get("/users/me", headers=key_header(mine[1]["key"]))).status_code == 401
    gone = await client.delete(f"/admin/api-keys/{mine[1]['id']}", headers=bearer(admin))
    assert gone.status_code == 404
    naming = await client.post(
        "/admin/api-keys",
        json={"owner_id": mine[0]["owner_id"], "name": "x", "scopes": ["admin"]},
        headers=bearer(admin),
    )
    assert naming.status_code == 422
    assert naming.json()["code"] == "invalid_scope"
    nobody = await client.post(
        "/admin/api-keys",
        json={"owner_id": "00000000-0000-0000-0000-000000000000", "name": "x"},
        headers=bearer(admin),
    )
    assert nobody.status_code == 404


async def test_key_names_are_checked(client: httpx.AsyncClient) -> None:
    """A name with control characters or over 100 characters is 422 and not echoed."""
    pair = await signup(client)
    for name in ("bad\nname", "x" * 101, ""):
        response = await client.post(
            "/users/me/api-keys", json={"name": name}, headers=bearer(pair)
        )
        assert response.status_code == 422, name
