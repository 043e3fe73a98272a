"""End to end: limits counted in Redis are exact across two `gatehouse serve` processes on
one PostgreSQL and one Redis, even for attempts that arrive at the same moment."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from tests.e2e.harness import PASSWORD, register
from tests.e2e.test_several_instances import two_hosts

BURST = 50


def _login(client: httpx.Client, username: str, password: str) -> httpx.Response:
    return client.post("/auth/login", json={"username": username, "password": password})


def _spread(
    clients: tuple[httpx.Client, httpx.Client], attempts: list[tuple[str, str]]
) -> list[int]:
    """Send every (username, password) at once, alternating between the two hosts; the
    statuses in the order sent."""
    with ThreadPoolExecutor(max_workers=len(attempts)) as pool:
        futures = [
            pool.submit(_login, clients[index % 2], username, password)
            for index, (username, password) in enumerate(attempts)
        ]
        return [future.result().status_code for future in futures]


def test_fifty_concurrent_failures_over_two_processes_count_as_fifty(
    tmp_path: Path, postgres_url: str
) -> None:
    """IP_FAILURE_LIMIT=50: fifty wrong passwords sent at once, half to each process, all
    answer 401; the next failure answers 429 rate_limited from either process."""
    with (
        two_hosts(tmp_path, postgres_url, ip_failure_limit=str(BURST)) as (host_a, host_b),
        host_a.client() as a,
        host_b.client() as b,
    ):
        attempts = [(f"nobody-{n}", "wrong password") for n in range(BURST)]
        assert _spread((a, b), attempts) == [401] * BURST

        for client in (a, b):
            refused = _login(client, "nobody-else", "wrong password")
            assert refused.status_code == 429, refused.text
            assert refused.json()["code"] == "rate_limited"
            assert int(refused.headers["retry-after"]) >= 1


def test_a_concurrent_burst_on_one_name_over_two_processes_locks_at_the_threshold(
    tmp_path: Path, postgres_url: str
) -> None:
    """LOCKOUT_THRESHOLD=10: twenty wrong passwords for one name at once over both processes
    get exactly ten 401s and ten 429s; then the right password is 429 on both."""
    with (
        two_hosts(tmp_path, postgres_url, lockout_threshold="10") as (host_a, host_b),
        host_a.client() as a,
        host_b.client() as b,
    ):
        register(a, "erin")
        statuses = _spread((a, b), [("erin", "wrong password")] * 20)
        assert sorted(statuses) == [401] * 10 + [429] * 10

        for client in (a, b):
            locked = _login(client, "erin", PASSWORD)
            assert locked.status_code == 429, locked.text
            assert locked.json()["code"] == "account_locked"
