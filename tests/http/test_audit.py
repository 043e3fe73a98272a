"""The audit trail through the real app (SQLite and PostgreSQL): `GET /admin/audit` (admins
only, filters, pages, 422s, no way to change an event), the events of sessions, API keys,
client credentials, introspection and administration with their fields, staged events
that roll back with their change, no secret in any event, cleaned user-controlled strings,
and pruning by age."""

from __future__ import annotations

import base64
import json
import logging
import re
from datetime import timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx
import pytest

from gatehouse.server.audit.models import EVENT_TYPES, Actor
from gatehouse.server.clock import ManualClock
from gatehouse.server.wiring import Services, build_services
from tests.conftest import make_settings, truncate_all
from tests.http.devices import activate, create_license, fp, register_device
from tests.http.helpers import PASSWORD, admin_pair, bearer, login, register, signup
from tests.http.trail import events, one, stored_text, stored_types

# A cursor of the right shape whose instant cannot be put in UTC.
FORGED_CURSOR = (
    base64.urlsafe_b64encode(b"0001-01-01T00:00:00+14:00|00000000-0000-4000-8000-000000000000")
    .decode()
    .rstrip("=")
)
RFC3339_UTC = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z")
ITEM_FIELDS = {
    "id", "time", "type", "actor", "subject", "ip", "user_agent", "outcome", "request_id",
    "detail",
}  # fmt: skip


async def make_key(client: httpx.AsyncClient, pair: dict[str, Any], **body: Any) -> dict[str, Any]:
    response = await client.post(
        "/users/me/api-keys", json={"name": "svc", **body}, headers=bearer(pair)
    )
    assert response.status_code == 201, response.text
    record: dict[str, Any] = response.json()
    return record


def basic(client_id: str, secret: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()}


def user_id(pair: dict[str, Any]) -> str:
    claims = json.loads(base64.urlsafe_b64decode(pair["access_token"].split(".")[1] + "=="))
    sub: str = claims["sub"]
    return sub


# -- who may read the trail ---------------------------------------------------------------


async def test_the_trail_refuses_anonymous_callers_with_401_and_records_the_denial(
    client: httpx.AsyncClient, services: Services
) -> None:
    """No credential: 401, stored as admin.access_denied by an anonymous actor from the
    client's address, with the route, the method and the reason."""
    response = await client.get("/admin/audit", headers={"User-Agent": "probe/1"})
    assert response.status_code == 401
    admin = await admin_pair(client, services)
    (denied,) = await events(client, admin, services, type="admin.access_denied")
    assert denied["outcome"] == "failure"
    assert denied["actor"] == {"kind": "anonymous", "id": None}
    assert denied["ip"] == "203.0.113.7"
    assert denied["user_agent"] == "probe/1"
    assert denied["request_id"] == response.headers["x-request-id"]
    assert denied["detail"] == {
        "reason": "not_authenticated",
        "status": 401,
        "method": "GET",
        "route": "/admin/audit",
    }


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/admin/audit"),
        ("GET", "/admin/users"),
        ("DELETE", "/admin/users/00000000-0000-4000-8000-000000000000"),
        ("POST", "/admin/api-keys"),
        ("GET", "/admin/devices"),
        ("PATCH", "/admin/licenses/00000000-0000-4000-8000-000000000000"),
    ],
)
async def test_a_non_admin_on_any_admin_route_gets_403_recorded_with_them_as_actor(
    client: httpx.AsyncClient, services: Services, method: str, path: str
) -> None:
    """A logged-in user without the admin role: 403, and an admin.access_denied event that
    names the user and the route's template (never the raw path)."""
    alice = await signup(client)
    response = await client.request(method, path, headers=bearer(alice), json={})
    assert response.status_code == 403
    admin = await admin_pair(client, services)
    (denied,) = await events(client, admin, services, type="admin.access_denied")
    assert denied["actor"] == {"kind": "user", "id": user_id(alice)}
    assert denied["detail"]["status"] == 403
    assert denied["detail"]["reason"] == "insufficient_scope"
    assert denied["detail"]["method"] == method
    assert "00000000-0000" not in json.dumps(denied)


async def test_a_bad_token_on_an_admin_route_is_recorded_without_the_token(
    client: httpx.AsyncClient, services: Services
) -> None:
    """An invalid bearer token: 401 invalid_token, recorded; the token is in no event."""
    forged = "eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJlLW9mLWFuLWF0dGFja2Vy"
    response = await client.get("/admin/users", headers=bearer(forged))
    assert response.status_code == 401
    admin = await admin_pair(client, services)
    (denied,) = await events(client, admin, services, type="admin.access_denied")
    assert denied["detail"]["reason"] == "invalid_token"
    assert "c2lnbmF0dXJl" not in await stored_text(services)


@pytest.mark.parametrize("method", ["PUT", "PATCH", "DELETE", "POST"])
async def test_no_method_changes_the_trail(
    client: httpx.AsyncClient, services: Services, method: str
) -> None:
    """/admin/audit is read-only: every other method answers 405, even for an admin."""
    admin = await admin_pair(client, services)
    response = await client.request(method, "/admin/audit", headers=bearer(admin), json={})
    assert response.status_code == 405
    assert response.json()["code"] == "method_not_allowed"


# -- listing, filters, pages -------------------------------------------------------------


async def test_an_item_has_every_field_with_an_rfc3339_utc_time(
    client: httpx.AsyncClient, services: Services
) -> None:
    """{id, time (RFC 3339, UTC, Z), type, actor {kind, id}, subject {kind, id}, ip,
    user_agent, outcome, request_id, detail}."""
    admin = await admin_pair(client, services)
    alice = await signup(client)
    await client.post("/auth/logout-all", headers={**bearer(alice), "User-Agent": "ua/2"})
    item = await one(client, admin, services, "logout_all")
    assert set(item) == ITEM_FIELDS
    UUID(item["id"])
    assert RFC3339_UTC.fullmatch(item["time"]), item["time"]
    assert item["actor"] == {"kind": "user", "id": user_id(alice)}
    assert item["subject"] == {"kind": "user", "id": user_id(alice)}
    assert item["outcome"] == "success"
    assert item["user_agent"] == "ua/2"
    assert item["ip"] == "203.0.113.7"


async def test_events_come_newest_first_in_pages_that_follow_each_other(
    client: httpx.AsyncClient, services: Services, clock: ManualClock
) -> None:
    """Seven events a minute apart, pages of three: newest first, every event once, the
    last page without a next_cursor."""
    admin = await admin_pair(client, services)
    for _ in range(7):
        clock.advance(timedelta(minutes=1))
        assert (await client.get("/admin/users", headers=bearer("nope"))).status_code == 401
    await services.audit_recorder.flush()
    seen: list[dict[str, Any]] = []
    params = {"type": "admin.access_denied", "limit": "3"}
    pages = 0
    while True:
        response = await client.get("/admin/audit", params=params, headers=bearer(admin))
        assert response.status_code == 200, response.text
        page = response.json()
        pages += 1
        seen.extend(page["items"])
        if page["next_cursor"] is None:
            break
        params["cursor"] = page["next_cursor"]
    assert pages == 3
    assert len({e["id"] for e in seen}) == 7
    times = [e["time"] for e in seen]
    assert times == sorted(times, reverse=True)
    assert len(set(times)) == 7


async def test_events_of_one_instant_list_in_the_reverse_order_they_happened(
    client: httpx.AsyncClient, services: Services
) -> None:
    """With the clock standing still, newest first still means last recorded first."""
    admin = await admin_pair(client, services)
    key = await make_key(client, admin)
    assert (
        await client.delete(f"/users/me/api-keys/{key['id']}", headers=bearer(admin))
    ).status_code == 204
    listed = [e["type"] for e in await events(client, admin, services)]
    assert listed.index("api_key.revoked") < listed.index("api_key.created")


async def test_filters_select_by_type_actor_subject_and_time(
    client: httpx.AsyncClient, services: Services, clock: ManualClock
) -> None:
    """Each filter alone and together: type exactly, actor and subject by id, since
    inclusive and until exclusive."""
    alice = await signup(client, "alice")
    bob = await signup(client, "bob")
    start = clock.now()
    clock.advance(timedelta(minutes=5))  # the access tokens live 15 minutes
    middle = clock.now()
    assert (await client.post("/auth/logout", headers=bearer(alice))).status_code == 204
    clock.advance(timedelta(minutes=5))
    assert (await client.post("/auth/logout", headers=bearer(bob))).status_code == 204
    admin = await admin_pair(client, services)  # after the clock moved: a live token
    logouts = await events(client, admin, services, type="logout")
    assert [e["actor"]["id"] for e in logouts] == [user_id(bob), user_id(alice)]
    mine = await events(client, admin, actor=user_id(alice))
    assert {e["type"] for e in mine} >= {"logout", "user.registered"}
    assert all(e["actor"]["id"] == user_id(alice) for e in mine)
    session = alice["session_id"]
    assert [e["type"] for e in await events(client, admin, subject=session)] == ["logout"]
    stamp = middle.isoformat().replace("+00:00", "Z")
    later = await events(client, admin, type="logout", since=stamp)
    assert [e["actor"]["id"] for e in later] == [user_id(bob), user_id(alice)]
    assert await events(client, admin, type="logout", until=stamp) == []
    before_bob = (middle + timedelta(minutes=1)).isoformat()
    assert [
        e["actor"]["id"] for e in await events(client, admin, type="logout", until=before_bob)
    ] == [user_id(alice)]
    together = await events(
        client, admin, type="logout", actor=user_id(bob), since=start.isoformat()
    )
    assert len(together) == 1


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"type": "login.maybe"}, "type"),
        ({"type": ""}, "type"),
        ({"since": "yesterday"}, "since"),
        ({"since": "2026-01-31"}, "since"),
        ({"since": "2026-01-31T12:00:00"}, "since"),
        ({"until": "2026-13-01T00:00:00Z"}, "until"),
        ({"until": "2026-02-30T00:00:00+01:00"}, "until"),
        ({"until": "1" * 41}, "until"),
        ({"cursor": "!!!"}, "cursor"),
        ({"cursor": base64.urlsafe_b64encode(b"not|a-cursor").decode()}, "cursor"),
        ({"limit": "0"}, "limit"),
        ({"limit": "201"}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"actor": "a" * 65}, "actor"),
        # Offsets that take the instant past what UTC can hold.
        ({"since": "0001-01-01T00:00:00+01:00"}, "since"),
        ({"until": "9999-12-31T23:59:59-01:00"}, "until"),
        ({"cursor": FORGED_CURSOR}, "cursor"),
        # PostgreSQL refuses a NUL in any string; no stored id has a control character.
        ({"actor": "\x00"}, "actor"),
        ({"subject": "a\x00b"}, "subject"),
    ],
)
async def test_malformed_filters_and_cursors_are_422_naming_the_field(
    client: httpx.AsyncClient, services: Services, params: dict[str, str], field: str
) -> None:
    """Never a 500: 422 with the field in `errors`."""
    admin = await admin_pair(client, services)
    response = await client.get("/admin/audit", params=params, headers=bearer(admin))
    assert response.status_code == 422, response.text
    assert [e["field"] for e in response.json()["errors"]] == [field]


async def test_every_documented_type_is_a_valid_filter(
    client: httpx.AsyncClient, services: Services
) -> None:
    """The list the README documents is the list the filter accepts."""
    admin = await admin_pair(client, services)
    for event_type in sorted(EVENT_TYPES):
        response = await client.get(
            "/admin/audit", params={"type": event_type}, headers=bearer(admin)
        )
        assert response.status_code == 200, (event_type, response.text)


# -- the events of sessions ----------------------------------------------------------------


async def test_a_refresh_is_recorded_in_its_own_transaction(
    client: httpx.AsyncClient, services: Services
) -> None:
    """token.refreshed is stored when the answer comes (no flush), naming user and session."""
    alice = await signup(client)
    response = await client.post("/auth/refresh", json={"refresh_token": alice["refresh_token"]})
    assert response.status_code == 200
    assert "token.refreshed" in await stored_types(services)
    admin = await admin_pair(client, services)
    refreshed = await one(client, admin, services, "token.refreshed")
    assert refreshed["actor"] == {"kind": "user", "id": user_id(alice)}
    assert refreshed["subject"] == {"kind": "session", "id": alice["session_id"]}
    assert refreshed["outcome"] == "success"


async def test_a_reused_refresh_token_is_recorded_with_its_session(
    client: httpx.AsyncClient, services: Services
) -> None:
    """The rotated token presented again: refresh_token.reused (a failure by an unknown
    presenter) in the revocation's transaction; the session is gone."""
    alice = await signup(client)
    first = alice["refresh_token"]
    assert (await client.post("/auth/refresh", json={"refresh_token": first})).status_code == 200
    assert (await client.post("/auth/refresh", json={"refresh_token": first})).status_code == 401
    assert "refresh_token.reused" in await stored_types(services)
    admin = await admin_pair(client, services)
    reused = await one(client, admin, services, "refresh_token.reused")
    assert reused["outcome"] == "failure"
    assert reused["actor"] == {"kind": "anonymous", "id": None}
    assert reused["subject"] == {"kind": "session", "id": alice["session_id"]}
    assert reused["detail"] == {"user_id": user_id(alice), "concurrent": False}


async def test_a_refused_refresh_is_recorded_as_a_failure(
    client: httpx.AsyncClient, services: Services
) -> None:
    """An unknown refresh token: a failed token.refreshed with its reason, no subject."""
    response = await client.post("/auth/refresh", json={"refresh_token": "ghr_" + "x" * 40})
    assert response.status_code == 401
    admin = await admin_pair(client, services)
    failed = await one(client, admin, services, "token.refreshed")
    assert failed["outcome"] == "failure"
    assert failed["subject"] is None
    assert failed["detail"] == {"reason": "invalid_grant", "why": "unknown_token"}


async def test_logout_logout_all_and_ending_a_session_are_recorded(
    client: httpx.AsyncClient, services: Services
) -> None:
    """logout (the session), session.revoked (another of the user's sessions, by id) and
    logout_all (the user), each by the user, each in its own transaction."""
    await register(client)
    first = await login(client)
    second = await login(client)
    third = await login(client)
    ended = await client.delete(f"/users/me/sessions/{second['session_id']}", headers=bearer(first))
    assert ended.status_code == 204
    assert (await client.post("/auth/logout", headers=bearer(first))).status_code == 204
    assert (await client.post("/auth/logout-all", headers=bearer(third))).status_code == 204
    assert {"session.revoked", "logout", "logout_all"} <= set(await stored_types(services))
    admin = await admin_pair(client, services)
    me = user_id(first)
    revoked = await one(client, admin, services, "session.revoked")
    assert revoked["subject"] == {"kind": "session", "id": second["session_id"]}
    assert revoked["actor"] == {"kind": "user", "id": me}
    logout = await one(client, admin, services, "logout")
    assert logout["subject"] == {"kind": "session", "id": first["session_id"]}
    everything = await one(client, admin, services, "logout_all")
    assert everything["subject"] == {"kind": "user", "id": me}


async def test_ending_an_unknown_session_records_nothing(
    client: httpx.AsyncClient, services: Services
) -> None:
    """404 for a session that is not the user's: no session.revoked event, now or later."""
    alice = await signup(client)
    response = await client.delete(
        "/users/me/sessions/00000000-0000-4000-8000-000000000000", headers=bearer(alice)
    )
    assert response.status_code == 404
    await services.audit_recorder.flush()
    assert "session.revoked" not in await stored_types(services)


async def test_revoking_a_refresh_token_over_oauth_records_its_session_once(
    client: httpx.AsyncClient, services: Services
) -> None:
    """RFC 7009 revocation ends the session with session.revoked (via oauth_revoke); the same
    token again changes nothing and records nothing more."""
    alice = await signup(client)
    for _ in range(2):
        response = await client.post("/oauth/revoke", data={"token": alice["refresh_token"]})
        assert response.status_code == 200
    admin = await admin_pair(client, services)
    revoked = await one(client, admin, services, "session.revoked")
    assert revoked["detail"] == {"reason": "revoked", "via": "oauth_revoke"}


# -- API keys and client credentials ------------------------------------------------------


async def test_an_api_key_is_recorded_when_created_used_and_revoked(
    client: httpx.AsyncClient, services: Services, clock: ManualClock
) -> None:
    """api_key.created (in its transaction), api_key.used at most once a minute per key
    however often it is used, api_key.revoked (in its transaction)."""
    alice = await signup(client)
    key = await make_key(client, alice)
    assert "api_key.created" in await stored_types(services)
    for _ in range(3):
        assert (await client.get("/users/me", headers={"X-API-Key": key["key"]})).status_code == 200
    clock.advance(timedelta(seconds=61))
    assert (await client.get("/users/me", headers={"X-API-Key": key["key"]})).status_code == 200
    revoked = await client.delete(f"/users/me/api-keys/{key['id']}", headers=bearer(alice))
    assert revoked.status_code == 204
    assert "api_key.revoked" in await stored_types(services)

    admin = await admin_pair(client, services)
    created = await one(client, admin, services, "api_key.created")
    assert created["actor"] == {"kind": "user", "id": user_id(alice)}
    assert created["subject"] == {"kind": "api_key", "id": key["id"]}
    assert created["detail"]["owner_id"] == user_id(alice)
    assert created["detail"]["client_id"] == key["client_id"]
    used = await events(client, admin, services, type="api_key.used")
    assert len(used) == 2
    assert all(e["subject"] == {"kind": "api_key", "id": key["id"]} for e in used)
    gone = await one(client, admin, services, "api_key.revoked")
    assert gone["actor"] == {"kind": "user", "id": user_id(alice)}


async def test_an_admin_creating_and_revoking_a_key_for_another_user_is_the_actor(
    client: httpx.AsyncClient, services: Services
) -> None:
    """Through /admin/api-keys the admin acts; the owner is in the detail."""
    admin = await admin_pair(client, services)
    alice = await signup(client)
    made = await client.post(
        "/admin/api-keys",
        json={"owner_id": user_id(alice), "name": "for alice"},
        headers=bearer(admin),
    )
    assert made.status_code == 201, made.text
    revoked = await client.delete(f"/admin/api-keys/{made.json()['id']}", headers=bearer(admin))
    assert revoked.status_code == 204
    created = await one(client, admin, services, "api_key.created")
    assert created["actor"] == {"kind": "user", "id": user_id(admin)}
    assert created["detail"]["owner_id"] == user_id(alice)
    gone = await one(client, admin, services, "api_key.revoked")
    assert gone["actor"] == {"kind": "user", "id": user_id(admin)}


async def test_client_credentials_exchanges_are_recorded_with_their_outcome(
    client: httpx.AsyncClient, services: Services
) -> None:
    """A good exchange: client_credentials.issued with the key and scope; a wrong secret and
    a scope beyond the key: failures with their reason, the secret in neither."""
    alice = await signup(client)
    key = await make_key(client, alice)
    client_id, _, secret = key["key"].rpartition("_")
    token = await client.post(
        "/oauth/token", data={"grant_type": "client_credentials"}, headers=basic(client_id, secret)
    )
    assert token.status_code == 200, token.text
    wrong = await client.post(
        "/oauth/token",
        data={"grant_type": "client_credentials"},
        headers=basic(client_id, "w" * len(secret)),
    )
    assert wrong.status_code == 401
    greedy = await client.post(
        "/oauth/token",
        data={"grant_type": "client_credentials", "scope": "admin"},
        headers=basic(client_id, secret),
    )
    assert greedy.status_code == 400
    admin = await admin_pair(client, services)
    issued = await events(client, admin, services, type="client_credentials.issued")
    by_outcome = {(e["outcome"], e["detail"].get("reason")): e for e in issued}
    ok = by_outcome[("success", None)]
    assert ok["subject"] == {"kind": "api_key", "id": key["id"]}
    assert ok["actor"] == {"kind": "user", "id": user_id(alice)}
    assert ok["detail"] == {"scope": "user"}
    assert by_outcome[("failure", "invalid_client")]["subject"] is None
    assert by_outcome[("failure", "invalid_scope")]["subject"] == {
        "kind": "api_key",
        "id": key["id"],
    }
    assert secret not in await stored_text(services)


async def test_introspection_denials_are_recorded(
    client: httpx.AsyncClient, services: Services
) -> None:
    """No credential (401) and a caller without admin or introspect (403) are each an
    introspection.denied event; an allowed introspection is none."""
    alice = await signup(client)
    anonymous = await client.post("/oauth/introspect", data={"token": alice["access_token"]})
    assert anonymous.status_code == 401
    forbidden = await client.post(
        "/oauth/introspect", data={"token": alice["access_token"]}, headers=bearer(alice)
    )
    assert forbidden.status_code == 403
    admin = await admin_pair(client, services)
    allowed = await client.post(
        "/oauth/introspect", data={"token": alice["access_token"]}, headers=bearer(admin)
    )
    assert allowed.status_code == 200
    denied = await events(client, admin, services, type="introspection.denied")
    assert [(e["actor"], e["detail"]["status"]) for e in denied] == [
        ({"kind": "user", "id": user_id(alice)}, 403),
        ({"kind": "anonymous", "id": None}, 401),
    ]
    assert alice["access_token"] not in await stored_text(services)


# -- administration -----------------------------------------------------------------------


async def test_admin_changes_to_a_user_are_each_recorded_by_the_admin(
    client: httpx.AsyncClient, services: Services
) -> None:
    """Create, roles, deactivate, activate, delete: user.created, user.roles_changed (new and
    previous roles), user.deactivated, user.activated, user.deleted, each stored by the time
    the answer comes, each with the admin as actor and the user as subject."""
    admin = await admin_pair(client, services)
    made = await client.post(
        "/admin/users", json={"username": "Carol", "password": PASSWORD}, headers=bearer(admin)
    )
    assert made.status_code == 201, made.text
    carol = made.json()["id"]
    for change in ({"roles": ["user", "auditor"]}, {"is_active": False}, {"is_active": True}):
        response = await client.patch(f"/admin/users/{carol}", json=change, headers=bearer(admin))
        assert response.status_code == 200, response.text
    assert (await client.delete(f"/admin/users/{carol}", headers=bearer(admin))).status_code == 204
    kinds = await stored_types(services)
    for kind in (
        "user.created",
        "user.roles_changed",
        "user.deactivated",
        "user.activated",
        "user.deleted",
    ):
        assert kind in kinds

    me = {"kind": "user", "id": user_id(admin)}
    subject = {"kind": "user", "id": carol}
    (created,) = await events(client, admin, services, type="user.created", subject="carol")
    assert created["actor"] == me
    assert created["detail"] == {"roles": "user", "service_account": False}
    roles = await one(client, admin, services, "user.roles_changed")
    assert (roles["actor"], roles["subject"]) == (me, subject)
    assert roles["detail"] == {"roles": "auditor user", "previous": "user"}
    for kind in ("user.deactivated", "user.activated", "user.deleted"):
        found = await one(client, admin, services, kind)
        assert (found["actor"], found["subject"], found["outcome"]) == (me, subject, "success")


async def test_a_change_that_changes_nothing_records_nothing(
    client: httpx.AsyncClient, services: Services
) -> None:
    """Setting the roles a user has, or activating an active user: no event."""
    admin = await admin_pair(client, services)
    alice = await signup(client)
    response = await client.patch(
        f"/admin/users/{user_id(alice)}",
        json={"roles": ["user"], "is_active": True},
        headers=bearer(admin),
    )
    assert response.status_code == 200
    kinds = set(await stored_types(services))
    assert not kinds & {"user.roles_changed", "user.activated", "user.deactivated"}


async def test_a_failed_creation_records_no_success(
    client: httpx.AsyncClient, services: Services
) -> None:
    """A taken username (409) rolls its staged events back: user.created and
    user.registered exist once each, for the account that was made."""
    admin = await admin_pair(client, services)
    body = {"username": "dave", "password": PASSWORD}
    assert (await client.post("/admin/users", json=body, headers=bearer(admin))).status_code == 201
    again = await client.post(
        "/admin/users", json={**body, "username": "DAVE"}, headers=bearer(admin)
    )
    assert again.status_code == 409
    taken = await client.post("/auth/register", json=body)
    assert taken.status_code == 409
    await services.audit_recorder.flush()
    created = await events(client, admin, type="user.created", subject="dave")
    assert len(created) == 1
    registered = [
        e
        for e in await events(client, admin, type="user.registered")
        if e["detail"].get("username") == "dave"
    ]
    assert len(registered) == 1


async def test_operator_actions_at_the_cli_are_recorded_with_a_cli_actor(
    services: Services, client: httpx.AsyncClient
) -> None:
    """Users made and changed through the service without an admin (as the CLI does) are
    recorded with actor kind `cli`."""
    admin = await admin_pair(client, services)
    created = await one(client, admin, services, "user.created")
    assert created["actor"] == {"kind": "cli", "id": None}
    assert created["ip"] is None


# -- what events never hold, and how they hold what users send -------------------------------


async def test_no_secret_reaches_any_stored_event(
    client: httpx.AsyncClient, services: Services
) -> None:
    """After a login, refreshes, a reuse, an API key's creation, uses and client credentials,
    no stored column holds the password, a refresh or access token, the key or its secret."""
    alice = await signup(client)
    refreshed = (
        await client.post("/auth/refresh", json={"refresh_token": alice["refresh_token"]})
    ).json()
    await client.post("/auth/refresh", json={"refresh_token": alice["refresh_token"]})
    pair = await login(client)
    key = await make_key(client, pair)
    client_id, _, secret = key["key"].rpartition("_")
    await client.get("/users/me", headers={"X-API-Key": key["key"]})
    await client.post(
        "/oauth/token", data={"grant_type": "client_credentials"}, headers=basic(client_id, secret)
    )
    await client.post("/auth/login", json={"username": "alice", "password": PASSWORD + "x"})
    text = await stored_text(services)
    assert text  # there are events to search
    for leaked in (
        PASSWORD,
        alice["refresh_token"],
        alice["access_token"],
        refreshed["refresh_token"],
        pair["access_token"],
        key["key"],
        secret,
    ):
        assert leaked not in text


async def test_a_user_agent_with_control_characters_is_stored_without_them(
    client: httpx.AsyncClient, services: Services
) -> None:
    """Control characters in User-Agent never reach the trail; the rest does, cut at 512."""
    agent = "Mozilla/5.0\x01\x7f (forged\x1b[0m)" + "y" * 600
    alice = await signup(client)
    await client.post("/auth/logout", headers={**bearer(alice), "User-Agent": agent})
    admin = await admin_pair(client, services)
    logout = await one(client, admin, services, "logout")
    assert logout["user_agent"].startswith("Mozilla/5.0 (forged[0m)yyy")
    assert len(logout["user_agent"]) == 512


async def test_a_username_with_quotes_is_stored_as_it_is_and_escaped_in_json(
    client: httpx.AsyncClient, services: Services, caplog: pytest.LogCaptureFixture
) -> None:
    """A name like o'hara "the" admin comes back exactly through the API, and its log line
    is one valid JSON object (the quotes escaped, nothing injected)."""
    caplog.set_level(logging.INFO, logger="gatehouse.audit")
    admin = await admin_pair(client, services)
    name = 'o\'hara"},{"type":"forged'
    made = await client.post(
        "/admin/users", json={"username": name, "password": PASSWORD}, headers=bearer(admin)
    )
    assert made.status_code == 201, made.text
    created = [
        e
        for e in await events(client, admin, services, type="user.created")
        if e["actor"]["kind"] == "user"
    ]
    assert created[0]["subject"] == {"kind": "username", "id": name}
    lines = [r.getMessage() for r in caplog.records if r.name == "gatehouse.audit"]
    parsed = [json.loads(line) for line in lines]
    assert not any(e["type"] == "forged" for e in parsed)
    assert any(e["subject"] == {"kind": "username", "id": name} for e in parsed)


# -- retention -----------------------------------------------------------------------------


async def test_pruning_deletes_events_past_the_retention_only(
    client: httpx.AsyncClient, services: Services, clock: ManualClock
) -> None:
    """With the default 90 days: events older than that go, younger ones stay."""
    admin = await admin_pair(client, services)
    await client.post("/auth/logout-all", headers=bearer(admin))  # an old event
    await services.audit_recorder.flush()
    clock.advance(timedelta(days=89))
    old_count = len(await stored_types(services))
    assert old_count >= 3
    assert await services.audit.prune_expired() == 0
    clock.advance(timedelta(days=2))
    assert (await client.get("/admin/users", headers=bearer("x"))).status_code == 401
    await services.audit_recorder.flush()
    assert await services.audit.prune_expired() == old_count
    assert await stored_types(services) == ["admin.access_denied"]


async def test_a_retention_of_zero_keeps_every_event(
    database_url: str, tmp_path: Path, clock: ManualClock
) -> None:
    """GATEHOUSE_AUDIT_RETENTION=0: nothing is ever pruned by age."""
    built = build_services(
        make_settings(database_url, tmp_path, audit_retention=timedelta(0)), clock=clock
    )
    await truncate_all(built.db)
    try:
        await built.admin.create_user("erin", PASSWORD, email=None, roles=frozenset({"user"}))
        clock.advance(timedelta(days=3650))
        assert await built.audit.prune_expired() == 0
        assert len(await stored_types(built)) == 2
    finally:
        await built.close()


# -- devices and licenses ------------------------------------------------------------------


async def test_the_life_of_a_license_and_its_devices_is_recorded(
    client: httpx.AsyncClient, services: Services, clock: ManualClock
) -> None:
    """license.created/updated/deleted and device.activated, heartbeat_failed,
    activate_failed, deactivated, culled, updated, revoked, deleted: each state change
    stored by the time its answer comes, each failure after a flush, with its actor."""
    admin = await admin_pair(client, services)
    me = {"kind": "user", "id": user_id(admin)}
    lic = await create_license(client, admin, policy={"cull_after": 3600})
    first = await activate(client, lic["license_key"], fp("m1"))
    assert first.status_code == 200, first.text
    token = first.json()["access_token"]
    wrong = await client.post(
        "/devices/heartbeat", json={"fingerprint": fp("m2")}, headers=bearer(token)
    )
    assert wrong.status_code == 403
    assert (await activate(client, "ghl_" + "n" * 40, fp("m3"))).status_code == 401
    assert (await client.post("/devices/deactivate", headers=bearer(token))).status_code == 204
    again = await activate(client, lic["license_key"], fp("m1"))
    assert again.status_code == 200
    clock.advance(timedelta(hours=2))
    assert await services.devices.cull(by=Actor.system()) == 1
    admin = await login(client, "root-admin")  # a token of the clock's new time
    changed = await client.patch(
        f"/admin/licenses/{lic['id']}", json={"status": "suspended"}, headers=bearer(admin)
    )
    assert changed.status_code == 200, changed.text
    assert {"license.created", "device.activated", "device.deactivated", "device.culled",
            "license.updated"} <= set(await stored_types(services))  # fmt: skip

    licensed = {"kind": "license", "id": lic["id"]}
    created = await one(client, admin, services, "license.created")
    assert (created["actor"], created["subject"]) == (me, licensed)
    assert created["detail"] == {"product": "Acme Desktop", "max_devices": 3}
    updated = await one(client, admin, services, "license.updated")
    assert updated["detail"] == {"status": "suspended"}
    activations = await events(client, admin, type="device.activated")
    assert [e["detail"]["created"] for e in activations] == [True, True]
    assert all(e["actor"] == {"kind": "anonymous", "id": None} for e in activations)
    assert all(e["detail"]["license_id"] == lic["id"] for e in activations)
    device = {"kind": "device", "id": again.json()["device_id"]}
    assert activations[0]["subject"] == device  # newest first
    failed_beat = await one(client, admin, services, "device.heartbeat_failed")
    assert failed_beat["detail"] == {"reason": "fingerprint_mismatch"}
    assert failed_beat["actor"] == {"kind": "device", "id": first.json()["device_id"]}
    assert (await one(client, admin, services, "device.activate_failed"))["detail"] == {
        "reason": "unknown_device"
    }
    deactivated = await one(client, admin, services, "device.deactivated")
    assert deactivated["actor"] == {"kind": "device", "id": first.json()["device_id"]}
    assert deactivated["detail"] == {"license_id": lic["id"], "removed": True}
    culled = await one(client, admin, services, "device.culled")
    assert (culled["actor"], culled["subject"]) == ({"kind": "system", "id": None}, device)

    deleted = await client.delete(f"/admin/licenses/{lic['id']}", headers=bearer(admin))
    assert deleted.status_code == 204
    gone = await one(client, admin, services, "license.deleted")
    assert gone["subject"] == licensed

    registered = await register_device(client, admin, fp("desk"))
    path = f"/admin/devices/{registered['id']}"
    assert (
        await client.patch(path, json={"label": "desk 2"}, headers=bearer(admin))
    ).status_code == 200
    assert (
        await client.patch(path, json={"status": "revoked"}, headers=bearer(admin))
    ).status_code == 200
    assert (await client.delete(path, headers=bearer(admin))).status_code == 204
    for kind in ("device.updated", "device.revoked", "device.deleted"):
        found = await one(client, admin, services, kind)
        assert (found["actor"], found["subject"]) == (
            me,
            {"kind": "device", "id": registered["id"]},
        )
    assert fp("m1") not in await stored_text(services)


async def test_a_refused_change_to_a_device_records_nothing(
    client: httpx.AsyncClient, services: Services
) -> None:
    """Reinstating a revoked device is 409: no device.reinstated event."""
    admin = await admin_pair(client, services)
    registered = await register_device(client, admin, fp("desk"))
    path = f"/admin/devices/{registered['id']}"
    assert (
        await client.patch(path, json={"status": "revoked"}, headers=bearer(admin))
    ).status_code == 200
    refused = await client.patch(path, json={"status": "active"}, headers=bearer(admin))
    assert refused.status_code == 409
    await services.audit_recorder.flush()
    assert "device.reinstated" not in await stored_types(services)
