"""End to end on PostgreSQL: `gatehouse db upgrade`, then `gatehouse serve --workers 2`."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tests.e2e.harness import (
    PASSWORD,
    Deployment,
    Server,
    assert_clean_failure,
    bearer,
    free_port,
    login,
    register,
)

SECRET = "postgres-e2e-secret-" + "p" * 40
ROUNDS_BEFORE_ROTATION = 40
ROUNDS_AFTER_CHANGE = 20
MAX_ROUNDS = 100


@pytest.fixture(scope="module")
def two_workers(
    tmp_path_factory: pytest.TempPathFactory, module_postgres_url: str
) -> Iterator[tuple[Deployment, Server]]:
    """`gatehouse db upgrade`, then `gatehouse serve --workers 2`, shared by this module's tests.

    Each test uses its own user; only the rotation test changes the keys.
    """
    deployment = Deployment.fresh(tmp_path_factory.mktemp("workers"))
    deployment.env.update(GATEHOUSE_DATABASE_URL=module_postgres_url, GATEHOUSE_SECRET_KEY=SECRET)
    upgraded = deployment.cli("db", "upgrade")
    assert upgraded.returncode == 0, upgraded.stderr
    with deployment.serve(workers=2) as server:
        assert len(server.worker_pids()) == 2, server.log()
        yield deployment, server


def _me_on_fresh_connection(server: Server, token: str) -> tuple[httpx.Response, int]:
    """GET /users/me over a new TCP connection; return the response and the serving pid."""
    with server.client() as client:
        response = client.get("/users/me", headers=bearer(token))
        return response, server.serving_pid(response)


def test_two_workers_share_sessions_and_pick_up_a_rotated_key(
    two_workers: tuple[Deployment, Server],
) -> None:
    """With two workers on PostgreSQL, a token works on both, and after `gatehouse keys rotate` a
    new login's token (new kid) works at once on a worker that had not loaded the new key."""
    deployment, server = two_workers
    workers = server.worker_pids()
    with server.client() as client:
        register(client, "alice")
        token = login(client, "alice")

    served_by = set()
    for _ in range(ROUNDS_BEFORE_ROTATION):
        response, pid = _me_on_fresh_connection(server, token)
        assert response.status_code == 200, response.text
        served_by.add(pid)
    assert served_by == workers

    rotated = deployment.cli("keys", "rotate")
    assert rotated.returncode == 0, rotated.stderr
    new_kid = rotated.stdout.split()[-1]

    # Workers reload keys every 60 s or on an unknown kid. Show one worker a (forged)
    # token naming the new kid so that it reloads; the other one stays unaware.
    forged = jwt.encode(
        {"sub": "nobody"},
        Ed25519PrivateKey.generate(),
        algorithm="EdDSA",
        headers={"kid": new_kid, "typ": "at+jwt"},
    )
    refused, aware = _me_on_fresh_connection(server, forged)
    assert refused.status_code == 401
    (unaware,) = workers - {aware}

    new_token = None
    for _ in range(MAX_ROUNDS):
        with server.client() as client:
            response = client.post("/auth/login", json={"username": "alice", "password": PASSWORD})
            assert response.status_code == 200, response.text
            if server.serving_pid(response) == aware:
                new_token = response.json()["access_token"]
                break
    assert new_token is not None, "no login landed on the worker that knows the new key"
    assert jwt.get_unverified_header(new_token)["kid"] == new_kid

    served_by = set()
    for attempt in range(MAX_ROUNDS):
        if attempt >= ROUNDS_AFTER_CHANGE and unaware in served_by:
            break
        response, pid = _me_on_fresh_connection(server, new_token)
        assert response.status_code == 200, (pid == unaware, response.text)
        served_by.add(pid)
    assert unaware in served_by


def test_a_logout_through_one_worker_is_refused_by_every_worker(
    two_workers: tuple[Deployment, Server],
) -> None:
    """With two workers on PostgreSQL, after a logout through one worker the access token is
    refused by both workers once REVOCATION_POLL_INTERVAL (250 ms) has passed."""
    _, server = two_workers
    workers = server.worker_pids()
    with server.client() as client:
        register(client, "bob")
        token = login(client, "bob")

    accepted_by: set[int] = set()
    for _ in range(MAX_ROUNDS):  # both workers now hold the live session in memory
        response, pid = _me_on_fresh_connection(server, token)
        assert response.status_code == 200, response.text
        accepted_by.add(pid)
        if accepted_by == workers:
            break
    assert accepted_by == workers

    with server.client() as client:
        assert client.post("/auth/logout", headers=bearer(token)).status_code == 204
    time.sleep(0.5)  # twice the poll interval

    refused_by: set[int] = set()
    for attempt in range(MAX_ROUNDS):
        if attempt >= ROUNDS_AFTER_CHANGE and refused_by == workers:
            break
        response, pid = _me_on_fresh_connection(server, token)
        assert response.status_code == 401, (pid, response.text)
        refused_by.add(pid)
    assert refused_by == workers


def test_serve_refuses_an_unmigrated_postgres_database(
    deployment: Deployment, postgres_url: str
) -> None:
    """`gatehouse serve` without `--migrate` on an unmigrated PostgreSQL database exits 2 telling
    the operator to run `gatehouse db upgrade`."""
    deployment.env.update(GATEHOUSE_DATABASE_URL=postgres_url, GATEHOUSE_SECRET_KEY=SECRET)

    result = deployment.cli("serve", "--port", str(free_port()))

    assert_clean_failure(result, 2)
    assert "gatehouse db upgrade" in result.stderr
