"""Small steps that many HTTP tests share."""

from __future__ import annotations

from typing import Any

import httpx

from gatehouse.server.wiring import Services

PASSWORD = "correct horse battery"


async def register(
    client: httpx.AsyncClient, username: str = "alice", password: str = PASSWORD, **extra: Any
) -> dict[str, Any]:
    response = await client.post(
        "/auth/register", json={"username": username, "password": password, **extra}
    )
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def login(
    client: httpx.AsyncClient,
    username: str = "alice",
    password: str = PASSWORD,
    device_name: str | None = None,
) -> dict[str, Any]:
    payload: dict[str, Any] = {"username": username, "password": password}
    if device_name is not None:
        payload["device_name"] = device_name
    response = await client.post("/auth/login", json=payload)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def signup(client: httpx.AsyncClient, username: str = "alice") -> dict[str, Any]:
    """Register and log in; return the token pair."""
    await register(client, username)
    return await login(client, username)


async def on_devices(client: httpx.AsyncClient, *devices: str) -> list[dict[str, Any]]:
    """Register alice and log in once per device name; return the token pairs in order."""
    await register(client)
    return [await login(client, device_name=device) for device in devices]


async def admin_pair(client: httpx.AsyncClient, services: Services) -> dict[str, Any]:
    """Create an admin through the service (as the CLI does) and log in."""
    await services.admin.create_user(
        "root-admin", PASSWORD, email=None, roles=frozenset({"admin", "user"})
    )
    return await login(client, "root-admin")


def bearer(pair: dict[str, Any] | str) -> dict[str, str]:
    token = pair if isinstance(pair, str) else pair["access_token"]
    return {"Authorization": f"Bearer {token}"}
