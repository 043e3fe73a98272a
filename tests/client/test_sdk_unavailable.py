"""A server that cannot be reached: both clients raise ServerUnavailable after bounded
retries, within the time they were given."""

from __future__ import annotations

import socket
import time

import pytest

from gatehouse.client import AsyncClient, AuthError, Client, ServerUnavailable


def _closed_port() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def test_the_sync_client_gives_up_after_its_retries() -> None:
    """retries=3: four connection attempts, the waits 0.05+0.1+0.2 s, then ServerUnavailable."""
    started = time.monotonic()
    with (
        Client(_closed_port(), retries=3, backoff=0.05) as gatehouse,
        pytest.raises(ServerUnavailable) as caught,
    ):
        gatehouse.login("alice", "correct horse battery")
    elapsed = time.monotonic() - started
    assert caught.value.attempts == 4
    assert 0.35 <= elapsed < 3
    assert isinstance(caught.value, AuthError)
    assert caught.value.status is None


async def test_the_async_client_gives_up_after_its_retries() -> None:
    """The AsyncClient makes the same four attempts and raises ServerUnavailable."""
    async with AsyncClient(_closed_port(), retries=3, backoff=0.05) as gatehouse:
        with pytest.raises(ServerUnavailable) as caught:
            await gatehouse.register("alice", "correct horse battery")
    assert caught.value.attempts == 4


def test_the_deadline_bounds_the_retries() -> None:
    """With 100 retries allowed, a 0.5 s deadline still ends the attempts within it."""
    started = time.monotonic()
    with (
        Client(_closed_port(), retries=100, backoff=0.1, retry_deadline=0.5) as gatehouse,
        pytest.raises(ServerUnavailable) as caught,
    ):
        gatehouse.login("alice", "correct horse battery")
    assert time.monotonic() - started < 1.0
    assert 2 <= caught.value.attempts < 10
