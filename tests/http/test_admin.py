"""The admin API: who may call it, listing, creating, changing and deleting users."""

from __future__ import annotations

import httpx
import pytest

from gatehouse.server.wiring import Services
from tests.http.helpers import PASSWORD, admin_pair, bearer, login, register, signup

SOME_ID = "00000000-0000-4000-8000-000000000000"
ADMIN_ROUTES = [
    ("GET", "/admin/users", None),
    ("POST", "/admin/users", {"username": "x-user", "password": PASSWORD}),
    ("GET", f"/admin/users/{SOME_ID}", None),
    ("PATCH", f"/admin/users/{SOME_ID}", {"is_active": False}),
    ("DELETE", f"/admin/users/{SOME_ID}", None),
]


@pytest.mark.parametrize(("method", "path", "body"), ADMIN_ROUTES)
async def test_admin_routes_refuse_anonymous_callers_with_401(
    client: httpx.AsyncClient, method: str, path: str, body: object
) -> None:
    """No token on an admin route: 401."""
    response = await client.request(method, path, json=body)
    assert response.status_code == 401


@pytest.mark.parametrize(("method", "path", "body"), ADMIN_ROUTES)
async def test_admin_routes_refuse_non_admins_with_403(
    client: httpx.AsyncClient, method: str, path: str, body: object
) -> None:
    """A valid token without the admin role on an admin route: 403 insufficient_scope."""
    pair = await signup(client)
    response = await client.request(method, path, json=body, headers=bearer(pair))
    assert response.status_code == 403
    assert response.json()["code"] == "insufficient_scope"
    assert 'error="insufficient_scope"' in response.headers["www-authenticate"]


async def test_admin_creates_a_user_with_roles(
    client: httpx.AsyncClient, services: Services
) -> None:
    """POST /admin/users makes an account with custom roles that can log in."""
    admin = await admin_pair(client, services)
    response = await client.post(
        "/admin/users",
        json={"username": "Grace", "password": PASSWORD, "roles": ["user", "billing:read"]},
        headers=bearer(admin),
    )
    assert response.status_code == 201
    assert response.json()["roles"] == ["billing:read", "user"]
    pair = await login(client, "grace")
    me = await client.get("/users/me", headers=bearer(pair))
    assert me.json()["roles"] == ["billing:read", "user"]


async def test_admin_refuses_malformed_role_names(
    client: httpx.AsyncClient, services: Services
) -> None:
    """Role names must be lowercase identifiers: 422 invalid_role."""
    admin = await admin_pair(client, services)
    response = await client.post(
        "/admin/users",
        json={"username": "heidi", "password": PASSWORD, "roles": ["Has Space"]},
        headers=bearer(admin),
    )
    assert response.status_code == 422
    assert response.json()["code"] == "invalid_role"


async def test_admin_lists_users_page_by_page(
    client: httpx.AsyncClient, services: Services
) -> None:
    """Pages follow next_cursor through every user exactly once, in username order."""
    admin = await admin_pair(client, services)
    for name in ["u-c", "u-a", "u-e", "u-b", "u-d"]:
        await register(client, name)
    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": "2", "prefix": "u-"} | ({"cursor": cursor} if cursor else {})
        page = (await client.get("/admin/users", params=params, headers=bearer(admin))).json()
        seen += [u["username"] for u in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == ["u-a", "u-b", "u-c", "u-d", "u-e"]


async def test_admin_filters_users_by_role_and_prefix(
    client: httpx.AsyncClient, services: Services
) -> None:
    """role= keeps users holding that role; prefix= matches canonical names."""
    admin = await admin_pair(client, services)
    await register(client, "Zed")
    by_role = (
        await client.get("/admin/users", params={"role": "admin"}, headers=bearer(admin))
    ).json()
    assert [u["username"] for u in by_role["items"]] == ["root-admin"]
    by_prefix = (
        await client.get("/admin/users", params={"prefix": "ZE"}, headers=bearer(admin))
    ).json()
    assert [u["username"] for u in by_prefix["items"]] == ["Zed"]
    wildcard = (
        await client.get("/admin/users", params={"prefix": "%"}, headers=bearer(admin))
    ).json()
    assert wildcard["items"] == []


async def test_admin_list_refuses_a_malformed_cursor(
    client: httpx.AsyncClient, services: Services
) -> None:
    """A cursor that does not decode gets 422, not 500."""
    admin = await admin_pair(client, services)
    response = await client.get("/admin/users", params={"cursor": "%%%"}, headers=bearer(admin))
    assert response.status_code == 422


async def test_admin_reads_and_changes_roles(client: httpx.AsyncClient, services: Services) -> None:
    """GET shows a user; PATCH roles replaces them and the next login carries them."""
    admin = await admin_pair(client, services)
    user = await register(client, "ivan")
    got = await client.get(f"/admin/users/{user['id']}", headers=bearer(admin))
    assert got.json()["username"] == "ivan"
    patched = await client.patch(
        f"/admin/users/{user['id']}", json={"roles": ["user", "support"]}, headers=bearer(admin)
    )
    assert patched.json()["roles"] == ["support", "user"]
    pair = await login(client, "ivan")
    assert (await client.get("/users/me", headers=bearer(pair))).json()["roles"] == [
        "support",
        "user",
    ]


async def test_roles_are_read_fresh_on_every_request(
    client: httpx.AsyncClient, services: Services
) -> None:
    """A demoted admin loses admin routes at once, even with an old access token."""
    admin = await admin_pair(client, services)
    other = await register(client, "judy")
    await client.patch(
        f"/admin/users/{other['id']}", json={"roles": ["admin", "user"]}, headers=bearer(admin)
    )
    judy = await login(client, "judy")
    assert (await client.get("/admin/users", headers=bearer(judy))).status_code == 200
    await client.patch(
        f"/admin/users/{other['id']}", json={"roles": ["user"]}, headers=bearer(admin)
    )
    assert (await client.get("/admin/users", headers=bearer(judy))).status_code == 403


async def test_deactivating_a_user_ends_all_their_sessions(
    client: httpx.AsyncClient, services: Services
) -> None:
    """is_active=false refuses the user's access and refresh tokens and new logins."""
    admin = await admin_pair(client, services)
    user = await register(client, "mallory")
    pair = await login(client, "mallory")
    response = await client.patch(
        f"/admin/users/{user['id']}", json={"is_active": False}, headers=bearer(admin)
    )
    assert response.status_code == 200
    assert response.json()["is_active"] is False
    assert (await client.get("/users/me", headers=bearer(pair))).status_code == 401
    refresh = await client.post("/auth/refresh", json={"refresh_token": pair["refresh_token"]})
    assert refresh.status_code == 401
    relogin = await client.post("/auth/login", json={"username": "mallory", "password": PASSWORD})
    assert relogin.status_code == 401


async def test_deleting_a_user_removes_them(client: httpx.AsyncClient, services: Services) -> None:
    """DELETE answers 204; the user is gone (404) and their tokens fail."""
    admin = await admin_pair(client, services)
    user = await register(client, "oscar")
    pair = await login(client, "oscar")
    assert (
        await client.delete(f"/admin/users/{user['id']}", headers=bearer(admin))
    ).status_code == 204
    assert (
        await client.get(f"/admin/users/{user['id']}", headers=bearer(admin))
    ).status_code == 404
    assert (await client.get("/users/me", headers=bearer(pair))).status_code == 401
    assert (
        await client.delete(f"/admin/users/{user['id']}", headers=bearer(admin))
    ).status_code == 404


async def test_admins_cannot_lock_themselves_out(
    client: httpx.AsyncClient, services: Services
) -> None:
    """Deactivating, demoting or deleting oneself answers 409 self_lockout and changes nothing."""
    admin = await admin_pair(client, services)
    me = (await client.get("/users/me", headers=bearer(admin))).json()
    for method, body in (
        ("PATCH", {"is_active": False}),
        ("PATCH", {"roles": ["user"]}),
        ("DELETE", None),
    ):
        response = await client.request(
            method, f"/admin/users/{me['id']}", json=body, headers=bearer(admin)
        )
        assert response.status_code == 409
        assert response.json()["code"] == "self_lockout"
    assert (await client.get("/admin/users", headers=bearer(admin))).status_code == 200


async def test_admin_routes_answer_404_and_422_for_bad_ids(
    client: httpx.AsyncClient, services: Services
) -> None:
    """An unknown id is 404; a malformed id is 422."""
    admin = await admin_pair(client, services)
    assert (await client.get(f"/admin/users/{SOME_ID}", headers=bearer(admin))).status_code == 404
    assert (
        await client.patch(f"/admin/users/{SOME_ID}", json={}, headers=bearer(admin))
    ).status_code == 404
    assert (await client.get("/admin/users/not-a-uuid", headers=bearer(admin))).status_code == 422
