"""Licenses through the real app: keys, seats, activation under concurrency, tolerance
matching, expiry and suspension, deactivation, culling and license files, on SQLite and
PostgreSQL."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timedelta
from typing import Any

import httpx
import jwt
import pytest
import sqlalchemy as sa

from gatehouse.server.audit.models import Actor
from gatehouse.server.clock import ManualClock
from gatehouse.server.storage.tables import devices, licenses
from gatehouse.server.wiring import Services
from tests.http.devices import (
    activate,
    components,
    create_license,
    fp,
    register_device,
    verify,
)
from tests.http.helpers import admin_pair, bearer
from tests.http.trail import events

LICENSE_FIELDS = {
    "id", "product", "max_devices", "seats_used", "owner_id", "status", "features", "policy",
    "expires_at", "created_at", "updated_at",
}  # fmt: skip


def rfc3339(at: datetime) -> str:
    return at.isoformat()


async def seats(client: httpx.AsyncClient, admin: dict[str, Any], license_id: str) -> int:
    got = await client.get(f"/admin/licenses/{license_id}", headers=bearer(admin))
    used: int = got.json()["seats_used"]
    return used


async def test_a_license_key_is_shown_once_and_stored_as_a_digest(
    client: httpx.AsyncClient, services: Services
) -> None:
    """201 with the license and `license_key`; GET and the list never show it; the table
    holds a 32-byte digest."""
    admin = await admin_pair(client, services)
    created = await create_license(
        client,
        admin,
        product="Acme Pro",
        max_devices=2,
        features=["export", "sync"],
        expires_at="2030-01-01T00:00:00+00:00",
        policy={"match": {"min_components": 2}, "offline_grace": 3600},
    )
    assert set(created) == LICENSE_FIELDS | {"license_key"}
    assert created["license_key"].startswith("ghl_")
    assert created["features"] == ["export", "sync"]
    assert created["policy"] == {
        "match": {"min_components": 2},
        "heartbeat_interval": None,
        "cull_after": None,
        "offline_grace": 3600,
    }
    assert created["seats_used"] == 0
    got = await client.get(f"/admin/licenses/{created['id']}", headers=bearer(admin))
    assert set(got.json()) == LICENSE_FIELDS
    listed = await client.get("/admin/licenses", headers=bearer(admin))
    assert created["license_key"] not in listed.text
    async with services.db.read() as conn:
        digest = (await conn.execute(sa.select(licenses.c.key_digest))).scalar_one()
    assert len(digest) == 32
    assert created["license_key"].encode() not in digest


@pytest.mark.parametrize(
    "body",
    [
        {"max_devices": 1},
        {"product": "p"},
        {"product": "", "max_devices": 1},
        {"product": "p", "max_devices": 0},
        {"product": "p", "max_devices": "3"},
        {"product": "p", "max_devices": 1.5},
        {"product": "p", "max_devices": 1, "expires_at": "2030-01-01T00:00:00"},
        {"product": "p", "max_devices": 1, "features": "export"},
        {"product": "p", "max_devices": 1, "policy": {"cull_after": 0}},
        {"product": "p", "max_devices": 1, "policy": {"offline_grace": "60"}},
        {"product": "p", "max_devices": 1, "policy": {"match": {"min_components": 0}}},
        {"product": "p", "max_devices": 1, "policy": {"grace": 60}},
    ],
)
async def test_malformed_licenses_are_422(
    client: httpx.AsyncClient, services: Services, body: dict[str, Any]
) -> None:
    admin = await admin_pair(client, services)
    response = await client.post("/admin/licenses", json=body, headers=bearer(admin))
    assert response.status_code == 422, response.text
    assert response.json()["code"] == "validation_failed"


async def test_activation_binds_a_machine_and_reactivation_takes_no_second_seat(
    client: httpx.AsyncClient, services: Services
) -> None:
    admin = await admin_pair(client, services)
    lic = await create_license(client, admin, max_devices=2, features=["export"])
    first = await activate(client, lic["license_key"], fp("m1"), label="desk")
    assert first.status_code == 200, first.text
    body = first.json()
    assert body["license"] == {
        "id": lic["id"],
        "product": "Acme Desktop",
        "features": ["export"],
        "expires_at": None,
    }
    again = await activate(client, lic["license_key"], fp("m1"))
    assert again.json()["device_id"] == body["device_id"]
    assert await seats(client, admin, lic["id"]) == 1
    device = await client.get(f"/admin/devices/{body['device_id']}", headers=bearer(admin))
    assert device.json()["label"] == "desk"
    assert device.json()["activated"] is True
    # And it verifies from now on.
    assert (await verify(client, fp("m1"))).json()["license"]["id"] == lic["id"]


async def test_a_full_license_answers_403_license_full(
    client: httpx.AsyncClient, services: Services
) -> None:
    admin = await admin_pair(client, services)
    lic = await create_license(client, admin, max_devices=1)
    assert (await activate(client, lic["license_key"], fp("m1"))).status_code == 200
    full = await activate(client, lic["license_key"], fp("m2"))
    assert full.status_code == 403
    assert full.json()["code"] == "license_full"
    assert (await verify(client, fp("m2"))).status_code == 401


async def test_concurrent_activations_never_take_more_seats_than_the_license_has(
    client: httpx.AsyncClient, services: Services
) -> None:
    """N+5 simultaneous activations of different machines against a limit of N: exactly N
    succeed, 5 answer license_full, and the table holds N devices."""
    n = 5
    admin = await admin_pair(client, services)
    lic = await create_license(client, admin, max_devices=n)
    answers = await asyncio.gather(
        *(activate(client, lic["license_key"], fp(f"m{i}")) for i in range(n + 5))
    )
    codes = sorted(a.status_code for a in answers)
    assert codes == [200] * n + [403] * 5
    assert {a.json()["code"] for a in answers if a.status_code == 403} == {"license_full"}
    async with services.db.read() as conn:
        count = (
            await conn.execute(
                sa.select(sa.func.count())
                .select_from(devices)
                .where(devices.c.license_id == uuid.UUID(lic["id"]))
            )
        ).scalar_one()
    assert count == n


async def test_concurrent_activations_of_one_machine_take_one_seat(
    client: httpx.AsyncClient, services: Services
) -> None:
    admin = await admin_pair(client, services)
    lic = await create_license(client, admin, max_devices=3)
    answers = await asyncio.gather(
        *(activate(client, lic["license_key"], fp("m1")) for _ in range(6))
    )
    assert [a.status_code for a in answers] == [200] * 6
    assert len({a.json()["device_id"] for a in answers}) == 1
    assert await seats(client, admin, lic["id"]) == 1


async def test_one_changed_component_still_verifies_where_the_policy_allows(
    client: httpx.AsyncClient, services: Services
) -> None:
    """With match.min_components=2, a machine whose network card changed (2 of 3
    components match) verifies; its stored fingerprint becomes the new one, and the match
    is recorded (device.matched_tolerant, in the transaction that rebinds it)."""
    admin = await admin_pair(client, services)
    lic = await create_license(client, admin, policy={"match": {"min_components": 2}})
    parts = components("m1")
    first = await activate(client, lic["license_key"], fp("m1"), components=parts)
    device_id = first.json()["device_id"]

    changed = {**parts, "mac": fp("a new network card")}
    response = await verify(client, fp("m1 with a new card"), components=changed)
    assert response.status_code == 200, response.text
    assert response.json()["device_id"] == device_id
    claims = jwt.decode(response.json()["license_file"], options={"verify_signature": False})
    assert claims["fingerprint"] == fp("m1 with a new card")
    # The new fingerprint now matches exactly; the old one no longer does.
    assert (await verify(client, fp("m1 with a new card"))).status_code == 200
    assert (await verify(client, fp("m1"))).status_code == 401
    matches = await events(client, admin, type="device.matched_tolerant")
    assert len(matches) == 1
    assert matches[0]["subject"] == {"kind": "device", "id": device_id}
    assert matches[0]["detail"]["components_matched"] == 2
    assert matches[0]["detail"]["components_presented"] == 3


async def test_without_a_tolerance_policy_a_changed_machine_is_unknown(
    client: httpx.AsyncClient, services: Services
) -> None:
    admin = await admin_pair(client, services)
    lic = await create_license(client, admin)
    parts = components("m1")
    await activate(client, lic["license_key"], fp("m1"), components=parts)
    changed = {**parts, "mac": fp("new card")}
    response = await verify(client, fp("m1 changed"), components=changed)
    assert response.status_code == 401
    assert response.json()["code"] == "unknown_device"


async def test_too_few_matching_components_is_unknown(
    client: httpx.AsyncClient, services: Services
) -> None:
    """With min_components=2, a machine sharing only one component (say, the CPU model)
    is another machine."""
    admin = await admin_pair(client, services)
    lic = await create_license(client, admin, policy={"match": {"min_components": 2}})
    parts = components("m1")
    await activate(client, lic["license_key"], fp("m1"), components=parts)
    other = {**components("m2"), "cpu": parts["cpu"]}
    response = await verify(client, fp("m2"), components=other)
    assert response.status_code == 401


async def test_reactivating_a_changed_machine_takes_no_second_seat(
    client: httpx.AsyncClient, services: Services
) -> None:
    admin = await admin_pair(client, services)
    lic = await create_license(
        client, admin, max_devices=1, policy={"match": {"min_components": 2}}
    )
    parts = components("m1")
    first = await activate(client, lic["license_key"], fp("m1"), components=parts)
    changed = {**parts, "mac": fp("new card")}
    again = await activate(client, lic["license_key"], fp("m1 changed"), components=changed)
    assert again.status_code == 200, again.text
    assert again.json()["device_id"] == first.json()["device_id"]
    assert await seats(client, admin, lic["id"]) == 1


@pytest.mark.parametrize(
    ("change", "code"),
    [({"status": "suspended"}, "license_suspended"), ({"expires_at": None}, "license_expired")],
)
async def test_suspended_and_expired_licenses_stop_their_devices_at_once(
    client: httpx.AsyncClient,
    services: Services,
    clock: ManualClock,
    change: dict[str, Any],
    code: str,
) -> None:
    """Verify, activate and heartbeat answer 403 with the license's code on the next
    request after the change."""
    admin = await admin_pair(client, services)
    lic = await create_license(client, admin)
    token = (await activate(client, lic["license_key"], fp("m1"))).json()["access_token"]
    if code == "license_expired":
        change = {"expires_at": rfc3339(clock.now() + timedelta(seconds=1))}
    patched = await client.patch(f"/admin/licenses/{lic['id']}", json=change, headers=bearer(admin))
    assert patched.status_code == 200, patched.text
    clock.advance(timedelta(seconds=2))

    for response in (
        await verify(client, fp("m1")),
        await activate(client, lic["license_key"], fp("m2")),
        await client.post(
            "/devices/heartbeat", json={"fingerprint": fp("m1")}, headers=bearer(token)
        ),
    ):
        assert response.status_code == 403, response.text
        assert response.json()["code"] == code
    if code == "license_suspended":
        await client.patch(
            f"/admin/licenses/{lic['id']}", json={"status": "active"}, headers=bearer(admin)
        )
        assert (await verify(client, fp("m1"))).status_code == 200


async def test_deactivation_frees_the_seat_by_token_or_by_license_key(
    client: httpx.AsyncClient, services: Services
) -> None:
    """Either way the seat is free for another machine and the activated device is gone."""
    admin = await admin_pair(client, services)
    lic = await create_license(client, admin, max_devices=1)
    token = (await activate(client, lic["license_key"], fp("m1"))).json()["access_token"]
    done = await client.post("/devices/deactivate", headers=bearer(token))
    assert done.status_code == 204
    assert (await verify(client, fp("m1"))).status_code == 401
    assert (await activate(client, lic["license_key"], fp("m2"))).status_code == 200

    by_key = await client.post(
        "/devices/deactivate", json={"license_key": lic["license_key"], "fingerprint": fp("m2")}
    )
    assert by_key.status_code == 204
    assert await seats(client, admin, lic["id"]) == 0
    assert (await activate(client, lic["license_key"], fp("m3"))).status_code == 200


async def test_deactivating_a_machine_that_holds_no_seat_is_the_unknown_answer(
    client: httpx.AsyncClient, services: Services
) -> None:
    admin = await admin_pair(client, services)
    lic = await create_license(client, admin)
    other = await create_license(client, admin)
    await activate(client, other["license_key"], fp("m1"))
    for body in (
        {"license_key": lic["license_key"], "fingerprint": fp("m1")},
        {"license_key": lic["license_key"], "fingerprint": fp("nobody")},
        {"license_key": "ghl_nothing", "fingerprint": fp("m1")},
    ):
        response = await client.post("/devices/deactivate", json=body)
        assert response.status_code == 401
        assert response.json()["code"] == "unknown_device"
    anonymous = await client.post("/devices/deactivate")
    assert anonymous.status_code == 401
    assert await seats(client, admin, other["id"]) == 1


async def test_deactivating_a_registered_device_unbinds_it_and_keeps_it_allowed(
    client: httpx.AsyncClient, services: Services
) -> None:
    admin = await admin_pair(client, services)
    lic = await create_license(client, admin)
    device = await register_device(client, admin, fp("m1"), license_id=lic["id"])
    token = (await verify(client, fp("m1"))).json()["access_token"]
    await client.post("/devices/deactivate", headers=bearer(token))
    after = await verify(client, fp("m1"))
    assert after.status_code == 200
    assert after.json()["device_id"] == device["id"]
    assert after.json()["license"] is None


async def test_admin_registration_on_a_full_license_is_refused(
    client: httpx.AsyncClient, services: Services
) -> None:
    admin = await admin_pair(client, services)
    lic = await create_license(client, admin, max_devices=1)
    await register_device(client, admin, fp("m1"), license_id=lic["id"])
    full = await client.post(
        "/admin/devices",
        json={"fingerprint": fp("m2"), "label": "x", "license_id": lic["id"]},
        headers=bearer(admin),
    )
    assert full.status_code == 403
    assert full.json()["code"] == "license_full"
    unknown = await client.post(
        "/admin/devices",
        json={
            "fingerprint": fp("m3"),
            "label": "x",
            "license_id": "00000000-0000-4000-8000-000000000000",
        },
        headers=bearer(admin),
    )
    assert unknown.status_code == 404


async def test_deleting_a_license_removes_its_activated_devices(
    client: httpx.AsyncClient, services: Services
) -> None:
    admin = await admin_pair(client, services)
    lic = await create_license(client, admin)
    await activate(client, lic["license_key"], fp("m1"))
    await register_device(client, admin, fp("m2"), license_id=lic["id"])
    gone = await client.delete(f"/admin/licenses/{lic['id']}", headers=bearer(admin))
    assert gone.status_code == 204
    assert (await verify(client, fp("m1"))).status_code == 401
    kept = await verify(client, fp("m2"))
    assert kept.status_code == 200
    assert kept.json()["license"] is None
    missing = await client.get(f"/admin/licenses/{lic['id']}", headers=bearer(admin))
    assert missing.status_code == 404


async def test_cull_frees_the_seats_of_devices_silent_past_cull_after(
    client: httpx.AsyncClient, services: Services, clock: ManualClock
) -> None:
    admin = await admin_pair(client, services)
    lic = await create_license(
        client, admin, max_devices=2, policy={"cull_after": 3600, "heartbeat_interval": 60}
    )
    await activate(client, lic["license_key"], fp("quiet"))
    clock.advance(timedelta(minutes=50))
    await activate(client, lic["license_key"], fp("busy"))
    clock.advance(timedelta(minutes=20))
    await verify(client, fp("busy"))
    await services.devices.close()
    assert await services.devices.cull(by=Actor.cli()) == 1
    assert (await verify(client, fp("quiet"))).status_code == 401
    assert (await verify(client, fp("busy"))).status_code == 200
    assert (await services.licenses.get(uuid.UUID(lic["id"]))).seats_used == 1


async def test_the_license_file_is_an_eddsa_jws_with_the_license_claims(
    client: httpx.AsyncClient, services: Services, clock: ManualClock
) -> None:
    """typ gatehouse-license+jwt, signed by a key in the JWKS; claims fingerprint (as sent),
    device_id, license_id, product, features, iat, and exp at the offline grace, capped by
    the license's own expiry."""
    admin = await admin_pair(client, services)
    expires = (clock.now() + timedelta(days=3)).replace(microsecond=0)
    lic = await create_license(
        client,
        admin,
        product="Acme Pro",
        features=["export"],
        expires_at=rfc3339(expires),
        policy={"offline_grace": 86400},
    )
    body = (await activate(client, lic["license_key"], fp("m1"))).json()
    token = body["license_file"]
    header = jwt.get_unverified_header(token)
    assert header["alg"] == "EdDSA"
    assert header["typ"] == "gatehouse-license+jwt"
    jwks = (await client.get("/.well-known/jwks.json")).json()
    key = jwt.PyJWK(next(k for k in jwks["keys"] if k["kid"] == header["kid"]))
    claims = jwt.decode(token, key, algorithms=["EdDSA"], options={"verify_exp": False})
    now = int(clock.now().timestamp())
    assert claims["fingerprint"] == fp("m1")
    assert claims["device_id"] == body["device_id"]
    assert claims["license_id"] == lic["id"]
    assert claims["product"] == "Acme Pro"
    assert claims["features"] == ["export"]
    assert claims["iat"] == now
    assert claims["exp"] == now + 86400
    clock.advance(timedelta(days=2, hours=12))
    later = jwt.decode(
        (await verify(client, fp("m1"))).json()["license_file"],
        options={"verify_signature": False},
    )
    assert later["exp"] == int(expires.timestamp())
