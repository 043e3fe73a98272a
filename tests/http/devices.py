"""Steps that the device and license tests share."""

from __future__ import annotations

import hashlib
from typing import Any

import httpx

from tests.http.helpers import bearer


def fp(seed: str) -> str:
    """A fingerprint as the tutorial makes one: a SHA-256 hexdigest."""
    return hashlib.sha256(seed.encode()).hexdigest()


def components(seed: str, names: tuple[str, ...] = ("machine_id", "mac", "cpu")) -> dict[str, str]:
    return {name: fp(f"{seed}/{name}") for name in names}


async def create_license(
    client: httpx.AsyncClient, admin: dict[str, Any], **body: Any
) -> dict[str, Any]:
    response = await client.post(
        "/admin/licenses",
        json={"product": "Acme Desktop", "max_devices": 3, **body},
        headers=bearer(admin),
    )
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def register_device(
    client: httpx.AsyncClient, admin: dict[str, Any], fingerprint: str, **body: Any
) -> dict[str, Any]:
    response = await client.post(
        "/admin/devices",
        json={"hardware_hash": fingerprint, "label": "workstation", **body},
        headers=bearer(admin),
    )
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def activate(
    client: httpx.AsyncClient, license_key: str, fingerprint: str, **body: Any
) -> httpx.Response:
    return await client.post(
        "/devices/activate",
        json={"license_key": license_key, "fingerprint": fingerprint, **body},
    )


async def verify(client: httpx.AsyncClient, fingerprint: str, **body: Any) -> httpx.Response:
    return await client.post("/devices/verify", json={"fingerprint": fingerprint, **body})
