"""End to end: two hosts' worth of Gatehouse on one PostgreSQL database and one Redis.

Two separate `gatehouse serve` processes, each with its own data dir and port, as two hosts
would run them, share the database (GATEHOUSE_DATABASE_URL), the server secret and Redis
(GATEHOUSE_REDIS_URL, with a key prefix of this test's own). The limits engineer's test of
50 concurrent failures over two processes lives with the limits tests.
"""

from __future__ import annotations

import contextlib
import os
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import redis

from tests.e2e.harness import PASSWORD, Deployment, Server, bearer, login, register

SECRET = "several-instances-secret-" + "s" * 40
REDIS_URL = os.environ.get("GATEHOUSE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
# How long a logout may take to reach the other host (the bar).
LOGOUT_REACH_SECONDS = 1.0
# A lock is read from Redis by every attempt; an address may be remembered as below its
# limit by a process for one second (limits/guard.py MEMO_SECONDS), so this bounds the poll.
SHARED_LIMIT_SECONDS = 3.0
POLL_SECONDS = 0.05


@contextlib.contextmanager
def two_hosts(root: Path, database_url: str, **settings: str) -> Iterator[tuple[Server, Server]]:
    """Two `gatehouse serve` processes on one database and one Redis (a fresh key prefix,
    whose keys are deleted afterwards)."""
    prefix = f"gatehouse-e2e-{uuid.uuid4().hex[:12]}:"
    shared = {
        "GATEHOUSE_DATABASE_URL": database_url,
        "GATEHOUSE_SECRET_KEY": SECRET,
        "GATEHOUSE_REDIS_URL": REDIS_URL,
        "GATEHOUSE_REDIS_KEY_PREFIX": prefix,
        **{f"GATEHOUSE_{name.upper()}": value for name, value in settings.items()},
    }
    first = Deployment.fresh(root / "host-a")
    second = Deployment.fresh(root / "host-b")
    for deployment in (first, second):
        deployment.workdir.mkdir(parents=True, exist_ok=True)
        deployment.env.update(shared)
    upgraded = first.cli("db", "upgrade")
    assert upgraded.returncode == 0, upgraded.stderr
    store = redis.Redis.from_url(REDIS_URL)
    try:
        with first.serve() as host_a, second.serve() as host_b:
            yield host_a, host_b
    finally:
        for key in store.scan_iter(match=f"{prefix}*"):
            store.delete(key)
        store.close()


def _login(client: httpx.Client, username: str, password: str) -> httpx.Response:
    return client.post("/auth/login", json={"username": username, "password": password})


def _eventually(check: Callable[[], bool], seconds: float) -> bool:
    """Call `check()` every 50 ms until it is true or `seconds` have passed."""
    deadline = time.monotonic() + seconds
    while True:
        if check():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(POLL_SECONDS)


def test_a_token_from_one_host_works_on_the_other_until_a_logout_on_either(
    tmp_path: Path, postgres_url: str
) -> None:
    """An access token issued by host A is accepted by host B; after a logout through A, B
    refuses it within a second."""
    with (
        two_hosts(tmp_path, postgres_url) as (host_a, host_b),
        host_a.client() as a,
        host_b.client() as b,
    ):
        register(a, "alice")
        token = login(a, "alice")
        me = b.get("/users/me", headers=bearer(token))
        assert me.status_code == 200, me.text
        assert me.json()["username"] == "alice"

        assert a.post("/auth/logout", headers=bearer(token)).status_code == 204
        refused = _eventually(
            lambda: b.get("/users/me", headers=bearer(token)).status_code == 401,
            LOGOUT_REACH_SECONDS,
        )
        assert refused, "host B still accepted the token a second after the logout on A"


def test_failures_through_both_hosts_lock_the_name_on_both(
    tmp_path: Path, postgres_url: str
) -> None:
    """With LOCKOUT_THRESHOLD=3, wrong passwords through A, B, A all answer 401 and lock the
    name: the right password then answers 429 account_locked (with Retry-After) on B and A."""
    with (
        two_hosts(tmp_path, postgres_url, lockout_threshold="3") as (host_a, host_b),
        host_a.client() as a,
        host_b.client() as b,
    ):
        register(a, "carol")
        for client in (a, b, a):
            assert _login(client, "carol", "wrong password").status_code == 401

        for client in (b, a):
            locked = _login(client, "carol", PASSWORD)
            assert locked.status_code == 429, locked.text
            assert locked.json()["code"] == "account_locked"
            assert int(locked.headers["retry-after"]) >= 1


def test_failures_through_both_hosts_count_against_one_address_limit(
    tmp_path: Path, postgres_url: str
) -> None:
    """With IP_FAILURE_LIMIT=6, six failed logins from one address spread over A and B (six
    different names, so no lockout) use up the address: the next failure on either host is
    429 rate_limited, and so, within the limits' one-second memo, is the right password."""
    with (
        two_hosts(tmp_path, postgres_url, ip_failure_limit="6") as (host_a, host_b),
        host_a.client() as a,
        host_b.client() as b,
    ):
        register(a, "dave")
        for index, client in enumerate((a, b, a, b, a, b)):
            assert _login(client, f"nobody-{index}", "wrong password").status_code == 401

        for client in (a, b):
            refused = _login(client, "nobody-else", "wrong password")
            assert refused.status_code == 429, refused.text
            assert refused.json()["code"] == "rate_limited"
            assert int(refused.headers["retry-after"]) >= 1
        for client in (a, b):
            assert _eventually(
                lambda c=client: _login(c, "dave", PASSWORD).status_code == 429,
                SHARED_LIMIT_SECONDS,
            ), "the right password was still let through"
