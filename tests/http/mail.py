"""A real local SMTP server for the mail tests, and reading links out of what it received.

`Mailbox` runs aiosmtpd's `Controller` (its own thread and event loop) on a free loopback
port; every message it accepts is parsed and kept. Tests wait for messages with a bounded
poll, never a fixed sleep.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
from aiosmtpd.controller import Controller

from gatehouse.server.clock import ManualClock
from gatehouse.server.config import Settings
from gatehouse.server.http.app import create_app
from gatehouse.server.wiring import Services, build_services
from tests.conftest import make_settings, truncate_all

WAIT_SECONDS = 10.0
_LINK = re.compile(r"https?://[^\s\"<>]+token=[A-Za-z0-9_-]+")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class _Handler:
    def __init__(self, box: Mailbox) -> None:
        self._box = box

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        parsed = message_from_bytes(envelope.content, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        with self._box.lock:
            self._box.messages.append(parsed)
            self._box.recipients.append(list(envelope.rcpt_tos))
        return "250 Message accepted"


class Mailbox:
    """An SMTP server on 127.0.0.1:`port` (started with `start`, stopped with `stop`)."""

    def __init__(self, port: int | None = None, **server: Any) -> None:
        """`server`: aiosmtpd's SMTP options (TLS, authentication) for this server."""
        self._server = server
        self.port = port or free_port()
        self.messages: list[EmailMessage] = []
        self.recipients: list[list[str]] = []
        self.lock = threading.Lock()
        self._controller: Controller | None = None

    def start(self) -> None:
        self._controller = Controller(
            _Handler(self), hostname="127.0.0.1", port=self.port, **self._server
        )
        self._controller.start()

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def count(self) -> int:
        with self.lock:
            return len(self.messages)

    async def wait_for(self, count: int = 1) -> list[EmailMessage]:
        """The first `count` messages, once that many arrived (at most WAIT_SECONDS)."""
        deadline = time.monotonic() + WAIT_SECONDS
        while self.count() < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.count()} of {count} messages arrived")
            await asyncio.sleep(0.02)
        with self.lock:
            return list(self.messages[:count])

    def wait_for_sync(self, count: int = 1) -> list[EmailMessage]:
        """`wait_for` for synchronous tests (the browser tests)."""
        deadline = time.monotonic() + WAIT_SECONDS
        while self.count() < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.count()} of {count} messages arrived")
            time.sleep(0.02)
        with self.lock:
            return list(self.messages[:count])


def text_of(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain",))
    assert part is not None, "no text/plain part"
    return str(part.get_content())


def html_of(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("html",))
    assert part is not None, "no text/html part"
    return str(part.get_content())


def link_in(message: EmailMessage) -> str:
    """The one link with a token in the plain-text body."""
    links: set[str] = set(_LINK.findall(text_of(message)))
    assert len(links) == 1, links
    return links.pop()


def token_in(message: EmailMessage) -> str:
    """The token of the message's link."""
    return parse_qs(urlsplit(link_in(message)).query)["token"][0]


def mail_settings(
    database_url: str, data_dir: Path, mailbox: Mailbox, **overrides: Any
) -> Settings:
    """Test settings that send mail to `mailbox` over plain SMTP."""
    values: dict[str, Any] = {
        "smtp_host": "127.0.0.1",
        "smtp_port": mailbox.port,
        "smtp_security": "none",
        **overrides,
    }
    return make_settings(database_url, data_dir, **values)


@contextlib.asynccontextmanager
async def serving(
    settings: Settings, clock: ManualClock, *, empty: bool = True
) -> AsyncIterator[tuple[Services, httpx.AsyncClient]]:
    """The real app over `settings` (its lifespan run, so the outbox worker runs), with a
    client from 203.0.113.7; tables emptied first unless `empty` is False."""
    services = build_services(settings, clock=clock)
    try:
        if empty:
            await truncate_all(services.db)
        app = create_app(services=services)
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 50000))
            async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
                yield services, c
    finally:
        await services.close()


async def drained(services: Services) -> None:
    """Wait (bounded) until the outbox is empty: every job resolved, every mail sent."""
    deadline = time.monotonic() + WAIT_SECONDS
    while await services.outbox.depth():
        if time.monotonic() > deadline:
            raise AssertionError(f"{await services.outbox.depth()} outbox items left")
        services.outbox.wake()
        await asyncio.sleep(0.02)


async def reset_mail(
    client: httpx.AsyncClient, mailbox: Mailbox, email: str, *, nth: int = 1
) -> str:
    """Ask for a reset of `email` and return the token of the `nth` message received."""
    response = await client.post("/auth/password/forgot", json={"email": email})
    assert response.status_code == 202, response.text
    return token_in((await mailbox.wait_for(nth))[nth - 1])


def running_mailbox() -> Iterator[Mailbox]:
    """The body of a test module's `mailbox` fixture: a started server, stopped after."""
    box = Mailbox()
    box.start()
    try:
        yield box
    finally:
        box.stop()
