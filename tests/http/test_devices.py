"""Devices through the real app: the registry, verify at start, the wire format, device
tokens, heartbeats, suspension and revocation, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import jwt
import pytest
import sqlalchemy as sa

from gatehouse.server.clock import ManualClock
from gatehouse.server.storage.tables import device_components, devices
from gatehouse.server.wiring import Services
from tests.http.devices import components, create_license, fp, register_device, verify
from tests.http.helpers import admin_pair, bearer, signup
from tests.http.trail import events, stored_text, stored_types

SOME_ID = "00000000-0000-4000-8000-000000000000"
DEVICE_ROUTES = [
    ("GET", "/admin/devices", None),
    ("POST", "/admin/devices", {"hardware_hash": "a" * 64, "label": "x"}),
    ("GET", f"/admin/devices/{SOME_ID}", None),
    ("PATCH", f"/admin/devices/{SOME_ID}", {"status": "suspended"}),
    ("DELETE", f"/admin/devices/{SOME_ID}", None),
    ("GET", "/admin/licenses", None),
    ("POST", "/admin/licenses", {"product": "p", "max_devices": 1}),
    ("GET", f"/admin/licenses/{SOME_ID}", None),
    ("PATCH", f"/admin/licenses/{SOME_ID}", {"status": "suspended"}),
    ("DELETE", f"/admin/licenses/{SOME_ID}", None),
]
DEVICE_FIELDS = {
    "id", "label", "status", "owner_id", "license_id", "activated", "created_at", "last_seen_at",
}  # fmt: skip


def device_owner(pair: dict[str, Any]) -> str:
    """The user id of a token pair (its access token's subject)."""
    sub: str = jwt.decode(pair["access_token"], options={"verify_signature": False})["sub"]
    return sub


@pytest.mark.parametrize(("method", "path", "body"), DEVICE_ROUTES)
async def test_device_and_license_admin_routes_refuse_anonymous_callers_with_401(
    client: httpx.AsyncClient, method: str, path: str, body: object
) -> None:
    """No credential on /admin/devices or /admin/licenses: 401, whatever the method."""
    response = await client.request(method, path, json=body)
    assert response.status_code == 401
    assert response.json()["code"] == "not_authenticated"


@pytest.mark.parametrize(("method", "path", "body"), DEVICE_ROUTES)
async def test_device_and_license_admin_routes_refuse_non_admins_with_403(
    client: httpx.AsyncClient, method: str, path: str, body: object
) -> None:
    """A user without the admin role: 403 insufficient_scope on every route and method."""
    pair = await signup(client)
    response = await client.request(method, path, json=body, headers=bearer(pair))
    assert response.status_code == 403
    assert response.json()["code"] == "insufficient_scope"


async def test_a_registered_hardware_hash_verifies_with_no_license(
    client: httpx.AsyncClient, services: Services
) -> None:
    """The tutorial's flow kept: an admin registers a hash, the program posts
    {"hardware_hash"} at start and gets 200 with `license: null` and a device token."""
    admin = await admin_pair(client, services)
    created = await register_device(client, admin, fp("machine-1"), label="Alice's laptop")
    assert set(created) == DEVICE_FIELDS
    assert created["status"] == "active"
    assert created["license_id"] is None

    response = await client.post("/devices/verify", json={"hardware_hash": fp("machine-1")})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["device_id"] == created["id"]
    assert body["license"] is None
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == services.settings.access_token_ttl.total_seconds()
    # hardware_id, the tutorial client's own name, is the same field.
    again = await client.post("/devices/verify", json={"hardware_id": fp("machine-1")})
    assert again.status_code == 200
    assert again.json()["device_id"] == created["id"]


async def test_a_device_token_is_signed_like_a_user_token_but_says_kind_device(
    client: httpx.AsyncClient, services: Services
) -> None:
    """Same iss, aud, typ and kid as a user's access token; sub is the device id and kind
    is "device" (a user's token says kind "user"); it verifies with the published JWKS."""
    admin = await admin_pair(client, services)
    device = await register_device(client, admin, fp("machine-1"))
    token = (await verify(client, fp("machine-1"))).json()["access_token"]

    device_header = jwt.get_unverified_header(token)
    user_header = jwt.get_unverified_header(admin["access_token"])
    assert device_header == user_header
    assert device_header["typ"] == "at+jwt"
    jwks = (await client.get("/.well-known/jwks.json")).json()
    key = jwt.PyJWK(next(k for k in jwks["keys"] if k["kid"] == device_header["kid"]))
    claims = jwt.decode(
        token,
        key,
        algorithms=["EdDSA"],
        audience="gatehouse-tests",
        issuer=services.settings.issuer,
    )
    user_claims = jwt.decode(admin["access_token"], options={"verify_signature": False})
    assert claims["sub"] == device["id"]
    assert claims["kind"] == "device"
    assert user_claims["kind"] == "user"
    assert "sid" not in claims
    assert claims["roles"] == []


async def test_a_device_token_does_not_act_for_a_user(
    client: httpx.AsyncClient, services: Services
) -> None:
    """GET /users/me with a device token: 401 invalid_token (a machine is not a user)."""
    admin = await admin_pair(client, services)
    await register_device(client, admin, fp("machine-1"))
    token = (await verify(client, fp("machine-1"))).json()["access_token"]
    response = await client.get("/users/me", headers=bearer(token))
    assert response.status_code == 401
    assert response.json()["code"] == "invalid_token"


BAD_IDENTITIES = [
    {"fingerprint": "A" * 64},  # uppercase
    {"fingerprint": "a" * 63},
    {"fingerprint": "a" * 65},
    {"fingerprint": "g" * 64},
    {"fingerprint": "a" * 64 + "\n"},
    {"fingerprint": 12345},
    {"fingerprint": None},
    {},
    {"fingerprint": "a" * 64, "hardware_hash": "a" * 64},
    {"hardware_hash": "a" * 64, "hardware_id": "b" * 64},
    {"fingerprint": "a" * 64, "components": {"Mac": "a" * 64}},
    {"fingerprint": "a" * 64, "components": {"x" * 65: "a" * 64}},
    {"fingerprint": "a" * 64, "components": {"mac": "A" * 64}},
    {"fingerprint": "a" * 64, "components": {"mac": "a" * 64, "bad name": "a" * 64}},
    {"fingerprint": "a" * 64, "components": {f"c{i}": "a" * 64 for i in range(33)}},
    {"fingerprint": "a" * 64, "components": ["a" * 64]},
]


@pytest.mark.parametrize("body", BAD_IDENTITIES)
async def test_malformed_identities_are_422_before_any_lookup(
    client: httpx.AsyncClient, services: Services, body: dict[str, Any]
) -> None:
    """Anything but exactly one 64-lowercase-hex identity and well-formed components is
    422 validation_failed on verify and activate, and the value is never echoed back."""
    for path, extra in (("/devices/verify", {}), ("/devices/activate", {"license_key": "ghl_x"})):
        response = await client.post(path, json={**body, **extra})
        assert response.status_code == 422, (path, body, response.text)
        assert response.json()["code"] == "validation_failed"
        assert "a" * 63 not in response.text


async def test_unknown_fingerprints_and_unknown_license_keys_get_the_same_401(
    client: httpx.AsyncClient, services: Services
) -> None:
    """An anonymous caller learns nothing: an unknown fingerprint at verify and an unknown
    (or malformed) license key at activate get the same status, code and detail."""
    unknown = await verify(client, fp("nobody"))
    bad_key = await client.post(
        "/devices/activate", json={"license_key": "ghl_" + "x" * 43, "fingerprint": fp("x")}
    )
    not_a_key = await client.post(
        "/devices/activate", json={"license_key": "hello", "fingerprint": fp("x")}
    )
    for response in (unknown, bad_key, not_a_key):
        assert response.status_code == 401
        assert response.json()["code"] == "unknown_device"
    assert unknown.json()["detail"] == bad_key.json()["detail"] == not_a_key.json()["detail"]


async def test_registering_a_fingerprint_twice_is_409_device_exists(
    client: httpx.AsyncClient, services: Services
) -> None:
    admin = await admin_pair(client, services)
    await register_device(client, admin, fp("machine-1"))
    again = await client.post(
        "/admin/devices",
        json={"fingerprint": fp("machine-1"), "label": "again"},
        headers=bearer(admin),
    )
    assert again.status_code == 409
    assert again.json()["code"] == "device_exists"


async def test_storage_keeps_keyed_digests_never_the_values_sent(
    client: httpx.AsyncClient, services: Services
) -> None:
    """The fingerprint and component values never reach the database; their digests are
    not plain SHA-256 of them either (HMAC under the server secret)."""
    admin = await admin_pair(client, services)
    parts = components("m1")
    await register_device(client, admin, fp("m1"), components=parts)
    async with services.db.read() as conn:
        row = (await conn.execute(sa.select(devices))).one()
        stored = (await conn.execute(sa.select(device_components.c.digest))).scalars().all()
    values = {bytes.fromhex(fp("m1")), *(bytes.fromhex(v) for v in parts.values())}
    assert row.fingerprint_digest not in values
    assert len(stored) == 3
    assert not values & set(stored)
    assert fp("m1") not in repr(tuple(row))


async def test_admins_list_filter_page_get_relabel_and_delete_devices(
    client: httpx.AsyncClient, services: Services, clock: ManualClock
) -> None:
    """GET /admin/devices pages oldest first with filters; GET/PATCH/DELETE by id."""
    admin = await admin_pair(client, services)
    lic = await create_license(client, admin)
    owner = (await client.get("/users/me", headers=bearer(admin))).json()["id"]
    made = []
    for i in range(5):
        extra: dict[str, Any] = {"license_id": lic["id"]} if i < 2 else {}
        if i == 4:
            extra["owner_id"] = owner
        made.append(await register_device(client, admin, fp(f"m{i}"), label=f"m{i}", **extra))
        clock.advance(timedelta(seconds=1))
    await verify(client, fp("m3"))
    await services.devices.close()  # the last-seen write has landed
    clock.advance(timedelta(seconds=1))

    first = await client.get("/admin/devices?limit=3", headers=bearer(admin))
    assert [d["label"] for d in first.json()["items"]] == ["m0", "m1", "m2"]
    cursor = first.json()["next_cursor"]
    second = await client.get(f"/admin/devices?limit=3&cursor={cursor}", headers=bearer(admin))
    assert [d["label"] for d in second.json()["items"]] == ["m3", "m4"]
    assert second.json()["next_cursor"] is None

    async def labels(query: str) -> list[str]:
        response = await client.get(f"/admin/devices?{query}", headers=bearer(admin))
        assert response.status_code == 200, response.text
        return [d["label"] for d in response.json()["items"]]

    assert await labels(f"license_id={lic['id']}") == ["m0", "m1"]
    assert await labels(f"owner_id={owner}") == ["m4"]
    assert await labels(f"seen_before={clock.now().isoformat().replace('+', '%2B')}") == ["m3"]
    assert await labels("seen_after=2000-01-01T00:00:00Z") == ["m3"]
    assert await labels("status=active") == ["m0", "m1", "m2", "m3", "m4"]
    bad = await client.get("/admin/devices?cursor=%%%", headers=bearer(admin))
    assert bad.status_code == 422

    device_id = made[2]["id"]
    got = await client.get(f"/admin/devices/{device_id}", headers=bearer(admin))
    assert got.json()["label"] == "m2"
    renamed = await client.patch(
        f"/admin/devices/{device_id}", json={"label": "build box"}, headers=bearer(admin)
    )
    assert renamed.json()["label"] == "build box"
    gone = await client.delete(f"/admin/devices/{device_id}", headers=bearer(admin))
    assert gone.status_code == 204
    missing = await client.get(f"/admin/devices/{device_id}", headers=bearer(admin))
    assert missing.status_code == 404
    assert (await verify(client, fp("m2"))).json()["code"] == "unknown_device"


@pytest.mark.parametrize(
    ("status", "code"), [("suspended", "device_suspended"), ("revoked", "device_revoked")]
)
async def test_suspension_and_revocation_take_effect_at_once_everywhere(
    client: httpx.AsyncClient, services: Services, status: str, code: str
) -> None:
    """After PATCH status: verify answers 403 with the code, the device's token is refused
    by heartbeat (403, same code) and introspection says inactive, on the next request."""
    admin = await admin_pair(client, services)
    device = await register_device(client, admin, fp("m1"))
    token = (await verify(client, fp("m1"))).json()["access_token"]
    live = await client.post("/oauth/introspect", data={"token": token}, headers=bearer(admin))
    assert live.json()["active"] is True
    assert live.json()["kind"] == "device"

    changed = await client.patch(
        f"/admin/devices/{device['id']}", json={"status": status}, headers=bearer(admin)
    )
    assert changed.json()["status"] == status

    refused = await verify(client, fp("m1"))
    assert refused.status_code == 403
    assert refused.json()["code"] == code
    beat = await client.post(
        "/devices/heartbeat", json={"fingerprint": fp("m1")}, headers=bearer(token)
    )
    assert beat.status_code == 403
    assert beat.json()["code"] == code
    gone = await client.post("/oauth/introspect", data={"token": token}, headers=bearer(admin))
    assert gone.json() == {"active": False}


async def test_a_revoked_device_stays_revoked_and_a_suspended_one_comes_back(
    client: httpx.AsyncClient, services: Services
) -> None:
    admin = await admin_pair(client, services)
    device = await register_device(client, admin, fp("m1"))
    path = f"/admin/devices/{device['id']}"
    await client.patch(path, json={"status": "suspended"}, headers=bearer(admin))
    back = await client.patch(path, json={"status": "active"}, headers=bearer(admin))
    assert back.json()["status"] == "active"
    assert (await verify(client, fp("m1"))).status_code == 200
    await client.patch(path, json={"status": "revoked"}, headers=bearer(admin))
    revive = await client.patch(path, json={"status": "active"}, headers=bearer(admin))
    assert revive.status_code == 409
    assert (await verify(client, fp("m1"))).json()["code"] == "device_revoked"


async def test_a_deleted_devices_token_is_refused_at_once(
    client: httpx.AsyncClient, services: Services
) -> None:
    """DELETE /admin/devices/{id}: its token gets 401 on heartbeat and is inactive."""
    admin = await admin_pair(client, services)
    device = await register_device(client, admin, fp("m1"))
    token = (await verify(client, fp("m1"))).json()["access_token"]
    beat = await client.post(
        "/devices/heartbeat", json={"fingerprint": fp("m1")}, headers=bearer(token)
    )
    assert beat.status_code == 200
    await client.delete(f"/admin/devices/{device['id']}", headers=bearer(admin))
    refused = await client.post(
        "/devices/heartbeat", json={"fingerprint": fp("m1")}, headers=bearer(token)
    )
    assert refused.status_code == 401
    assert refused.json()["code"] == "invalid_token"
    answer = await client.post("/oauth/introspect", data={"token": token}, headers=bearer(admin))
    assert answer.json() == {"active": False}


async def test_heartbeat_answers_a_fresh_license_file_and_writes_last_seen_once_per_interval(
    client: httpx.AsyncClient, services: Services, clock: ManualClock
) -> None:
    """Heartbeats within the policy's interval write last_seen_at once; the next after the
    interval writes again. Each answers a license file issued now."""
    admin = await admin_pair(client, services)
    lic = await create_license(client, admin, policy={"heartbeat_interval": 60})
    device = await register_device(client, admin, fp("m1"), license_id=lic["id"])
    token = (await verify(client, fp("m1"))).json()["access_token"]
    await services.devices.close()  # the background write has landed

    async def last_seen() -> Any:
        await services.devices.close()
        got = await client.get(f"/admin/devices/{device['id']}", headers=bearer(admin))
        return got.json()["last_seen_at"]

    first = await last_seen()
    assert first is not None
    clock.advance(timedelta(seconds=30))
    beat = await client.post(
        "/devices/heartbeat", json={"fingerprint": fp("m1")}, headers=bearer(token)
    )
    assert beat.status_code == 200, beat.text
    claims = jwt.decode(beat.json()["license_file"], options={"verify_signature": False})
    assert claims["iat"] == int(clock.now().timestamp())
    assert await last_seen() == first
    clock.advance(timedelta(seconds=31))
    await client.post("/devices/heartbeat", json={"fingerprint": fp("m1")}, headers=bearer(token))
    assert await last_seen() != first


async def test_a_heartbeat_with_another_fingerprint_is_403_and_records_nothing(
    client: httpx.AsyncClient, services: Services, clock: ManualClock
) -> None:
    admin = await admin_pair(client, services)
    lic = await create_license(client, admin, policy={"heartbeat_interval": 60})
    device = await register_device(client, admin, fp("m1"), license_id=lic["id"])
    token = (await verify(client, fp("m1"))).json()["access_token"]
    await services.devices.close()
    before = (await client.get(f"/admin/devices/{device['id']}", headers=bearer(admin))).json()
    clock.advance(timedelta(minutes=5))  # a heartbeat now would be written
    response = await client.post(
        "/devices/heartbeat", json={"fingerprint": fp("m2")}, headers=bearer(token)
    )
    assert response.status_code == 403
    assert response.json()["code"] == "fingerprint_mismatch"
    await services.devices.close()
    after = (await client.get(f"/admin/devices/{device['id']}", headers=bearer(admin))).json()
    assert after["last_seen_at"] == before["last_seen_at"]


async def test_heartbeat_needs_a_device_token(
    client: httpx.AsyncClient, services: Services
) -> None:
    """No token: 401 not_authenticated; a user's token: 401 invalid_token."""
    admin = await admin_pair(client, services)
    anonymous = await client.post("/devices/heartbeat", json={"fingerprint": fp("m1")})
    assert anonymous.status_code == 401
    assert anonymous.json()["code"] == "not_authenticated"
    user = await client.post(
        "/devices/heartbeat", json={"fingerprint": fp("m1")}, headers=bearer(admin)
    )
    assert user.status_code == 401
    assert user.json()["code"] == "invalid_token"


async def test_registration_suspension_and_failed_verifications_are_recorded(
    client: httpx.AsyncClient, services: Services
) -> None:
    """Audit events (GET /admin/audit): who, what, the device, the outcome; the registry's
    changes stored with them (no flush), the refusals soon after; never the fingerprint."""
    admin = await admin_pair(client, services)
    device = await register_device(client, admin, fp("m1"))
    await client.patch(
        f"/admin/devices/{device['id']}", json={"status": "suspended"}, headers=bearer(admin)
    )
    assert {"device.registered", "device.suspended"} <= set(await stored_types(services))
    await verify(client, fp("m1"))
    await verify(client, fp("unknown"))

    (registered,) = await events(client, admin, services, type="device.registered")
    assert registered["actor"] == {"kind": "user", "id": device_owner(admin)}
    assert registered["subject"] == {"kind": "device", "id": device["id"]}
    (suspended,) = await events(client, admin, type="device.suspended")
    assert suspended["outcome"] == "success"
    failures = await events(client, admin, type="device.verify_failed")
    assert [f["detail"]["reason"] for f in failures] == ["unknown_device", "device_suspended"]
    assert failures[0]["actor"] == {"kind": "anonymous", "id": None}
    assert failures[0]["ip"] == "203.0.113.7"
    assert failures[0]["outcome"] == "failure"
    stored = await stored_text(services)
    assert fp("m1") not in stored
    assert fp("unknown") not in stored
