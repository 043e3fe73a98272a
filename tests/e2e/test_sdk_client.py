"""The SDK against a real `gatehouse serve` over TCP: the sync `Client` end to end, its
`auth` under 20 threads, `FileTokenStore` shared by separate processes, and `AsyncClient`."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from gatehouse.client import (
    ApiError,
    AsyncClient,
    Client,
    ClientToken,
    FileTokenStore,
    InvalidCredentials,
    SessionRevoked,
    StoredTokens,
)
from tests.e2e.harness import PASSWORD, Deployment, Server, file_mode

RUN_TIMEOUT_SECONDS = 60


class Recording(httpx.BaseTransport):
    """Passes every request to the real server over TCP and records `(method, path)`."""

    def __init__(self, inner: httpx.BaseTransport) -> None:
        self.inner = inner
        self.seen: list[tuple[str, str]] = []
        self._lock = threading.Lock()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        with self._lock:
            self.seen.append((request.method, request.url.path))
        return self.inner.handle_request(request)

    def count(self, method: str, path: str) -> int:
        with self._lock:
            return self.seen.count((method, path))

    def close(self) -> None:
        self.inner.close()


class AsyncRecording(httpx.AsyncBaseTransport):
    """The async twin of `Recording`."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.seen: list[tuple[str, str]] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.seen.append((request.method, request.url.path))
        return await self.inner.handle_async_request(request)

    def count(self, method: str, path: str) -> int:
        return self.seen.count((method, path))

    async def aclose(self) -> None:
        await self.inner.aclose()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One `gatehouse serve` (fresh SQLite data dir) for this module."""
    deployment = Deployment.fresh(tmp_path_factory.mktemp("sdk"))
    with deployment.serve() as running:
        yield running


@pytest.fixture
def username(server: Server) -> str:
    """A fresh registered user per test, so tests never see each other's sessions."""
    name = f"u{uuid.uuid4().hex[:12]}"
    with Client(server.base_url) as gatehouse:
        gatehouse.register(name, PASSWORD)
    return name


def _recording(**kwargs: object) -> Recording:
    return Recording(httpx.HTTPTransport(**kwargs))  # type: ignore[arg-type]


def test_the_sync_client_logs_in_lists_sessions_and_logs_out(server: Server, username: str) -> None:
    """login -> me -> sessions (current marked) -> revoke the other -> logout_all."""
    with Client(server.base_url) as laptop, Client(server.base_url) as phone:
        pair = laptop.login(username, PASSWORD, device_name="laptop")
        other = phone.login(username, PASSWORD, device_name="phone")
        assert laptop.me().username == username
        sessions = {s.device_name: s for s in laptop.sessions()}
        assert sessions["laptop"].id == pair.session_id
        assert sessions["laptop"].current
        assert not sessions["phone"].current
        laptop.revoke_session(other.session_id)
        with pytest.raises(SessionRevoked):
            phone.me()
        laptop.logout_all()
        with pytest.raises(SessionRevoked):
            laptop.me()


def test_logout_ends_the_session_on_the_server(server: Server, username: str) -> None:
    """After logout() the old access token gets 401 from the server."""
    with Client(server.base_url) as gatehouse, server.client() as raw:
        gatehouse.login(username, PASSWORD)
        stored = gatehouse.store.load()
        assert stored is not None
        gatehouse.logout()
        answer = raw.get("/users/me", headers={"Authorization": f"Bearer {stored.access_token}"})
        assert answer.status_code == 401


def test_the_sync_client_raises_the_servers_refusals(server: Server, username: str) -> None:
    """A taken name is ApiError 409 username_taken; a wrong password InvalidCredentials."""
    with Client(server.base_url) as gatehouse:
        with pytest.raises(ApiError) as taken:
            gatehouse.register(username, PASSWORD)
        assert (taken.value.status, taken.value.code) == (409, "username_taken")
        with pytest.raises(InvalidCredentials):
            gatehouse.login(username, "not the password")


def test_the_sync_client_logs_in_with_an_api_key(server: Server, username: str) -> None:
    """A key made with the login's token logs another client in by client credentials."""
    with Client(server.base_url) as gatehouse, Client(server.base_url) as script:
        gatehouse.login(username, PASSWORD)
        with httpx.Client(base_url=server.base_url, auth=gatehouse.auth) as api:
            made = api.post("/users/me/api-keys", json={"name": "ci"})
        assert made.status_code == 201, made.text
        assert isinstance(script.login_with_api_key(made.json()["key"]), ClientToken)
        assert script.me().username == username


def test_twenty_threads_with_an_expired_token_share_one_refresh(
    server: Server, username: str
) -> None:
    """20 threads calling through `auth` after expiry make exactly one POST /auth/refresh."""
    skew = [0.0]
    transport = _recording()
    with Client(server.base_url, transport=transport, clock=lambda: time.time() + skew[0]) as gh:
        gh.login(username, PASSWORD)
        skew[0] = 3600.0  # the client's clock is past the token's expiry
        barrier = threading.Barrier(20)

        def call(_: int) -> int:
            with httpx.Client(base_url=server.base_url, auth=gh.auth) as api:
                barrier.wait()
                return api.get("/users/me").status_code

        with ThreadPoolExecutor(max_workers=20) as pool:
            statuses = list(pool.map(call, range(20)))
        assert statuses == [200] * 20
        assert transport.count("POST", "/auth/refresh") == 1
        assert gh.me().username == username  # not revoked as a reused refresh token


def test_twenty_threads_refused_with_401_share_one_refresh(server: Server, username: str) -> None:
    """A stored access token the server refuses: 20 threads get 401, one refresh, all 200."""
    transport = _recording()
    with Client(server.base_url, transport=transport) as gh:
        gh.login(username, PASSWORD)
        stored = gh.store.load()
        assert stored is not None
        gh.store.save(
            StoredTokens("garbage", stored.refresh_token, time.time() + 900, stored.session_id)
        )
        barrier = threading.Barrier(20)

        def call(_: int) -> int:
            barrier.wait()
            return 200 if gh.me().username == username else 0

        with ThreadPoolExecutor(max_workers=20) as pool:
            assert list(pool.map(call, range(20))) == [200] * 20
        assert transport.count("POST", "/auth/refresh") == 1
        # Each thread sent at most twice; one that started after the refresh, once.
        assert 21 <= transport.count("GET", "/users/me") <= 40


_PROGRAM = """
import sys
from gatehouse.client import Client, FileTokenStore
base, path, action = sys.argv[1:4]
with Client(base, store=FileTokenStore(path)) as gatehouse:
    if action == "login":
        gatehouse.login(sys.argv[4], sys.stdin.readline().rstrip("\\n"), device_name="cli")
    elif action == "refresh":
        for _ in range(int(sys.argv[4])):
            gatehouse.refresh()
    print(gatehouse.me().username)
"""


def _program(*args: str, stdin: str = "") -> subprocess.Popen[str]:
    return subprocess.Popen(  # noqa: S603 - our fixed program
        [sys.executable, "-c", _PROGRAM, *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _finish(process: subprocess.Popen[str], stdin: str = "") -> str:
    out, err = process.communicate(stdin, timeout=RUN_TIMEOUT_SECONDS)
    assert process.returncode == 0, err
    return out.strip()


def test_a_cli_program_stays_logged_in_across_runs(
    server: Server, username: str, tmp_path: Path
) -> None:
    """One run logs in with a FileTokenStore (0600); the next run is still logged in."""
    path = tmp_path / "tokens.json"
    assert _finish(_program(server.base_url, str(path), "login", username), PASSWORD) == username
    assert file_mode(path) == 0o600
    assert _finish(_program(server.base_url, str(path), "me")) == username


def test_two_processes_sharing_a_file_never_spend_one_refresh_token(
    server: Server, username: str, tmp_path: Path
) -> None:
    """Two processes each refreshing 10 times through one file stay logged in (no reuse)."""
    path = tmp_path / "tokens.json"
    _finish(_program(server.base_url, str(path), "login", username), PASSWORD)
    runs = [_program(server.base_url, str(path), "refresh", "10") for _ in range(2)]
    assert [_finish(run) for run in runs] == [username, username]
    with Client(server.base_url, store=FileTokenStore(path)) as gatehouse:
        assert gatehouse.me().username == username
        assert [s.device_name for s in gatehouse.sessions()] == ["cli"]


async def test_the_async_client_against_the_real_server(server: Server, username: str) -> None:
    """AsyncClient logs in; 20 tasks after expiry share one refresh; logout ends it."""
    skew = [0.0]
    transport = AsyncRecording(httpx.AsyncHTTPTransport())
    async with AsyncClient(
        server.base_url, transport=transport, clock=lambda: time.time() + skew[0]
    ) as gh:
        await gh.login(username, PASSWORD)
        skew[0] = 3600.0
        async with httpx.AsyncClient(base_url=server.base_url, auth=gh.auth) as api:
            answers = await asyncio.gather(*(api.get("/users/me") for _ in range(20)))
        assert [a.status_code for a in answers] == [200] * 20
        assert transport.count("POST", "/auth/refresh") == 1
        await gh.logout()
        with pytest.raises(SessionRevoked):
            await gh.me()
