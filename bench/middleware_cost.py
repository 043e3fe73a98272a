"""What the access log and the HTTP metrics cost per request, in-process.

    .venv/bin/python bench/middleware_cost.py [--batches 15] [--requests 4000]

Builds the real app three times over one set of services (a fresh SQLite data dir) and
calls each directly as ASGI, with no sockets, for `GET /healthz` and `GET /users/me`
(bearer, warm caches):

- `without`: the stack with `AccessLog` left out (what the app was before it);
- `metrics`: `AccessLog` with the access log off (`serve --no-access-log`): the two HTTP
  metrics are recorded, no line is built;
- `metrics+log`: the access log on, each line formatted as JSON and written to /dev/null
  through a StreamHandler, as `gatehouse serve` writes it to stderr.

Batches alternate between the variants so drift falls on all alike; the report is the
minimum (and median) microseconds per request over the batches, and each variant's cost
over `without`. Through uvicorn a request costs several hundred microseconds more (the
HTTP parsing and the socket), which this leaves out on purpose.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from starlette.types import ASGIApp, Message

from gatehouse.server.config import Settings
from gatehouse.server.http import app as app_module
from gatehouse.server.http.app import create_app
from gatehouse.server.logs import ACCESS_LOGGER, JsonFormatter
from gatehouse.server.sessions.models import ClientInfo
from gatehouse.server.storage import migrate
from gatehouse.server.wiring import Services, build_services

PASSWORD = "middleware-bench-password"


def scope_for(path: str, headers: list[tuple[bytes, bytes]]) -> Callable[[], dict[str, Any]]:
    base = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"bench"), (b"user-agent", b"bench/1.0"), *headers],
        "client": ("127.0.0.1", 50000),
        "server": ("bench", 80),
    }
    return lambda: {**base, "headers": list(base["headers"])}


async def call(app: ASGIApp, scope: dict[str, Any]) -> int:
    status = 0

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    await app(scope, receive, send)
    return status


async def token_for(services: Services) -> str:
    await services.accounts.register("bench", PASSWORD, email=None)
    user = await services.accounts.find_by_username("bench")
    assert user is not None
    pair = await services.sessions.open(user, ClientInfo(device_name="bench"))
    return pair.access_token


async def main(batches: int, requests: int, sink: TextIO) -> None:
    data_dir = Path(tempfile.mkdtemp(prefix="gatehouse-mwbench-"))
    # "test" names the cheap hashing profile; the secret is a fixture for a throwaway dir.
    settings = Settings(data_dir=data_dir, password_hashing="test", secret_key="b" * 40)  # noqa: S106
    services = build_services(settings)
    await migrate.upgrade(services.db)
    await services.start()
    access = logging.getLogger(ACCESS_LOGGER)
    access.propagate = False
    handler = logging.StreamHandler(sink)
    handler.setFormatter(JsonFormatter())
    access.addHandler(handler)
    try:
        apps: dict[str, ASGIApp] = {}
        real = app_module.AccessLog
        app_module.AccessLog = lambda inner: inner  # type: ignore[assignment,misc,return-value]
        try:
            apps["without"] = create_app(services=services)
            probe = scope_for("/healthz", [])
            await call(apps["without"], probe())  # builds its stack without AccessLog
        finally:
            app_module.AccessLog = real  # type: ignore[misc]
        apps["metrics"] = create_app(services=services)
        apps["metrics+log"] = create_app(services=services)
        token = await token_for(services)
        routes = {
            "GET /healthz": scope_for("/healthz", []),
            "GET /users/me": scope_for(
                "/users/me", [(b"authorization", f"Bearer {token}".encode())]
            ),
        }
        levels = {"without": logging.WARNING, "metrics": logging.WARNING}
        levels["metrics+log"] = logging.INFO
        for route, make in routes.items():
            for name, app in apps.items():
                status = await call(app, make())
                assert status == 200, (route, name, status)
        results: dict[tuple[str, str], list[float]] = {}
        for batch in range(batches):
            order = list(apps) if batch % 2 == 0 else list(reversed(apps))
            for route, make in routes.items():
                for name in order:
                    # Let the background tasks run (the invalidation poll keeps the
                    # principal cache fresh; a loop that never yields makes it stand aside).
                    await asyncio.sleep(0.3)
                    access.setLevel(levels[name])
                    app = apps[name]
                    start = time.perf_counter()
                    for _ in range(requests):
                        await call(app, make())
                    elapsed = time.perf_counter() - start
                    results.setdefault((route, name), []).append(elapsed / requests * 1e6)
        print(f"# in-process, {batches} batches x {requests} requests, us per request")
        print("| route | variant | min us | median us | min over `without` |")
        print("|---|---|--:|--:|--:|")
        for route in routes:
            floor = min(results[(route, "without")])
            for name in apps:
                values = results[(route, name)]
                extra = min(values) - floor
                print(
                    f"| {route} | {name} | {min(values):.1f} | {statistics.median(values):.1f}"
                    f" | {'-' if name == 'without' else f'+{extra:.1f} us'} |"
                )
    finally:
        access.removeHandler(handler)
        await services.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=15)
    parser.add_argument("--requests", type=int, default=4000)
    arguments = parser.parse_args()
    with open(os.devnull, "w") as devnull:  # the access lines go nowhere, by a real write
        asyncio.run(main(arguments.batches, arguments.requests, devnull))
    sys.exit(0)
