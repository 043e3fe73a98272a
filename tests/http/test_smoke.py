"""The basic journey works on each backend."""

from __future__ import annotations

import httpx

from tests.http.helpers import bearer, signup


async def test_register_login_and_read_me(client: httpx.AsyncClient) -> None:
    """A registered user logs in and reads their own profile with the access token."""
    pair = await signup(client)
    response = await client.get("/users/me", headers=bearer(pair))
    assert response.status_code == 200
    assert response.json()["username"] == "alice"
