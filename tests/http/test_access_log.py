"""The access log and the JSON log lines of a request, through the real app."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from gatehouse.server.http.access_log import UNMATCHED
from gatehouse.server.logs import ACCESS_LOGGER, JsonFormatter
from tests.http.helpers import bearer, signup


class Lines(logging.Handler):
    """Formats each record as it is emitted (while the request is being served, as a
    StreamHandler does) and keeps the parsed JSON objects."""

    def __init__(self) -> None:
        super().__init__(level=logging.INFO)
        self.setFormatter(JsonFormatter())
        self.entries: list[dict[str, Any]] = []

    def emit(self, record: logging.LogRecord) -> None:
        line = self.format(record)
        assert "\n" not in line
        self.entries.append(json.loads(line))

    def access(self) -> list[dict[str, Any]]:
        return [e for e in self.entries if e["logger"] == ACCESS_LOGGER]


@pytest.fixture
def lines() -> Iterator[Lines]:
    """Every `gatehouse*` line at INFO and above, as `gatehouse serve` writes them."""
    logger = logging.getLogger("gatehouse")
    handler = Lines()
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


@pytest.fixture
def noisy_app(app: FastAPI) -> FastAPI:
    """The app with two test-only routes: one that logs twice, one that raises."""
    test_log = logging.getLogger("gatehouse.test")

    async def chatty() -> dict[str, str]:
        test_log.info("first line of the request")
        test_log.warning("second line of the request")
        return {"status": "ok"}

    async def boom() -> None:
        raise RuntimeError("bug")

    app.add_api_route("/test-only/chatty", chatty)
    app.add_api_route("/test-only/boom", boom)
    return app


async def test_every_line_of_a_request_and_its_access_line_carry_its_request_id(
    noisy_app: FastAPI, client: httpx.AsyncClient, lines: Lines
) -> None:
    """Both lines a route logs and the access line have the request's id, the id answered
    as X-Request-ID; a second request's lines have a different id."""
    first = await client.get("/test-only/chatty")
    second = await client.get("/test-only/chatty")

    ids = [first.headers["x-request-id"], second.headers["x-request-id"]]
    assert ids[0] != ids[1]
    assert [e["request_id"] for e in lines.entries] == [ids[0]] * 3 + [ids[1]] * 3
    assert [e["logger"] for e in lines.entries[:3]] == [
        "gatehouse.test",
        "gatehouse.test",
        ACCESS_LOGGER,
    ]


async def test_a_well_formed_incoming_request_id_is_the_one_logged(
    client: httpx.AsyncClient, lines: Lines
) -> None:
    """A client's (or proxy's) X-Request-ID is answered and logged unchanged."""
    response = await client.get("/healthz", headers={"X-Request-ID": "edge-7f3a:1"})

    assert response.headers["x-request-id"] == "edge-7f3a:1"
    (entry,) = lines.access()
    assert entry["request_id"] == "edge-7f3a:1"


async def test_the_access_line_holds_method_route_path_status_duration_client_and_agent(
    client: httpx.AsyncClient, lines: Lines
) -> None:
    """An access line names the route template and the raw path, status, a duration in ms,
    the client address and the user agent."""
    pair = await signup(client)
    lines.entries.clear()
    session_id = "00000000-0000-4000-8000-000000000000"
    response = await client.delete(
        f"/users/me/sessions/{session_id}",
        headers={**bearer(pair), "User-Agent": 'probe/1.0 "quoted"'},
    )

    (entry,) = lines.access()
    assert entry["method"] == "DELETE"
    assert entry["route"] == "/users/me/sessions/{session_id}"
    assert entry["path"] == f"/users/me/sessions/{session_id}"
    assert entry["status"] == response.status_code
    assert isinstance(entry["duration_ms"], float | int)
    assert entry["duration_ms"] >= 0
    assert entry["client_ip"] == "203.0.113.7"
    assert entry["user_agent"] == 'probe/1.0 "quoted"'
    assert entry["level"] == "info"


async def test_no_token_or_key_of_a_url_reaches_the_access_log(
    client: httpx.AsyncClient, lines: Lines
) -> None:
    """Reset and verification links carry ?token=: the logged path keeps the parameter names
    and other values but never a token's or key's value."""
    secrets = ["reset-tok-123", "verify-tok-456", "ghk_abc_key789", "bearer-tok-000"]
    await client.get(f"/reset-password?token={secrets[0]}&lang=en")
    await client.get(f"/verify-email?TOKEN={secrets[1]}")
    await client.get("/users/me", params={"api_key": secrets[2], "page": "2"})
    await client.get("/healthz", params={"access_token": secrets[3]})

    logged = json.dumps(lines.entries)
    for secret in secrets:
        assert secret not in logged
    paths = [e["path"] for e in lines.access()]
    assert paths == [
        "/reset-password?token=[redacted]&lang=en",
        "/verify-email?TOKEN=[redacted]",
        "/users/me?api_key=[redacted]&page=2",
        "/healthz?access_token=[redacted]",
    ]


async def test_an_unknown_path_is_logged_as_sent_and_routed_as_unmatched(
    client: httpx.AsyncClient, lines: Lines
) -> None:
    """A 404 keeps its path in the log line and `unmatched` as its route."""
    await client.get("/no/such/thing")

    (entry,) = lines.access()
    assert (entry["route"], entry["path"], entry["status"]) == (UNMATCHED, "/no/such/thing", 404)


async def test_an_exception_is_logged_once_with_the_request_id_and_answered_500(
    noisy_app: FastAPI, lines: Lines
) -> None:
    """A route that raises answers 500; its traceback is one error line with the request id,
    followed by the access line with status 500."""
    transport = httpx.ASGITransport(app=noisy_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        response = await client.get("/test-only/boom")

    assert response.status_code == 500
    request_id = response.headers["x-request-id"]
    error, access = lines.entries
    assert (error["logger"], error["level"]) == ("gatehouse.http", "error")
    assert error["request_id"] == request_id
    assert "RuntimeError: bug" in error["exception"]
    assert (access["status"], access["request_id"]) == (500, request_id)


async def test_the_access_logger_off_writes_no_line(
    client: httpx.AsyncClient, lines: Lines
) -> None:
    """With gatehouse.access above INFO (`serve --no-access-log`) a request logs nothing."""
    access = logging.getLogger(ACCESS_LOGGER)
    access.setLevel(logging.WARNING)
    try:
        assert (await client.get("/healthz")).status_code == 200
    finally:
        access.setLevel(logging.NOTSET)

    assert lines.access() == []
