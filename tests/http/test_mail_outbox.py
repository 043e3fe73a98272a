"""The durable mail outbox: SMTP outages, restarts, .eml files, templates, exactly-once."""

from __future__ import annotations

import asyncio
import logging
import stat
from collections.abc import Awaitable, Callable
from datetime import timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from aiosmtpd.controller import Controller

from gatehouse.server.clock import ManualClock
from gatehouse.server.config import Settings
from gatehouse.server.mail.models import MailMessage
from gatehouse.server.mail.outbox import retry_delay
from gatehouse.server.mail.templates import MailTemplateError
from gatehouse.server.storage.outbox import SqlOutboxRepository
from gatehouse.server.storage.tables import mail_outbox
from gatehouse.server.wiring import Services, build_services
from tests.conftest import make_settings, truncate_all
from tests.http.helpers import register
from tests.http.mail import (
    Mailbox,
    drained,
    free_port,
    mail_settings,
    reset_mail,
    serving,
    text_of,
    token_in,
)
from tests.http.mail_fixtures import mailbox_fixture  # noqa: F401 - a pytest fixture

EMAIL = "alice@example.com"
NEW_PASSWORD = "a brand new passphrase"


async def _outbox_rows(services: Services) -> list[sa.Row[tuple[object, ...]]]:
    async with services.db.read() as conn:
        return list((await conn.execute(sa.select(mail_outbox))).all())


async def _until(condition: Callable[[], Awaitable[bool]], services: Services) -> None:
    """Wake the worker until `condition()` is true, at most 10 s."""
    for _ in range(500):
        services.outbox.wake()
        if await condition():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("the outbox did not get there")


def test_retries_back_off_from_5_seconds_doubling_to_at_most_60() -> None:
    """The waits after the 1st..7th failed tries: 5, 10, 20, 40, 60, 60, 60 seconds."""
    waits = [retry_delay(n).total_seconds() for n in range(1, 8)]
    assert waits == [5, 10, 20, 40, 60, 60, 60]


async def test_smtp_down_changes_no_answer_and_the_mail_goes_out_when_it_is_back(
    database_url: str, tmp_path: Path, clock: ManualClock
) -> None:
    """With the SMTP server down, forgot answers exactly as for an unknown address; the
    message waits in the outbox (retried with backoff); once the server is up and the
    retry is due, it is delivered and its link works."""
    down = Mailbox()  # not started: its port refuses connections
    settings = mail_settings(database_url, tmp_path, down)
    async with serving(settings, clock) as (services, client):
        await register(client, email=EMAIL)
        known = await client.post("/auth/password/forgot", json={"email": EMAIL})
        unknown = await client.post("/auth/password/forgot", json={"email": "x@example.com"})
        assert (known.status_code, known.content) == (unknown.status_code, unknown.content)

        async def failed_once() -> bool:
            rows = await _outbox_rows(services)
            return len(rows) == 1 and rows[0].attempts == 1 and rows[0].last_error is not None

        await _until(failed_once, services)
        (row,) = await _outbox_rows(services)
        assert row.kind == "mail"
        assert row.next_attempt_at == clock.now() + timedelta(seconds=5)
        assert "ConnectionRefusedError" in row.last_error

        down.start()
        try:
            clock.advance(timedelta(seconds=5))
            await drained(services)
            (message,) = await down.wait_for(1)
            response = await client.post(
                "/auth/password/reset",
                json={"token": token_in(message), "new_password": NEW_PASSWORD},
            )
            assert response.status_code == 204
        finally:
            down.stop()


async def test_a_restart_loses_no_queued_mail(
    database_url: str, tmp_path: Path, clock: ManualClock
) -> None:
    """A message queued while SMTP was down survives the process: new services over the
    same database deliver it once SMTP is up."""
    box = Mailbox()
    settings = mail_settings(database_url, tmp_path, box)
    async with serving(settings, clock) as (services, client):
        await register(client, email=EMAIL)
        await client.post("/auth/password/forgot", json={"email": EMAIL})

        async def mail_waiting() -> bool:
            rows = await _outbox_rows(services)
            return len(rows) == 1 and rows[0].kind == "mail" and rows[0].last_error is not None

        await _until(mail_waiting, services)
    box.start()
    try:
        clock.advance(timedelta(seconds=5))
        async with serving(settings, clock, empty=False) as (services, _):
            await drained(services)
            (message,) = await box.wait_for(1)
        assert message["To"] == EMAIL
        assert token_in(message).startswith("ghr_")
    finally:
        box.stop()


async def test_without_smtp_mail_is_written_as_eml_files_with_a_warning_at_start(
    database_url: str, tmp_path: Path, clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    """No SMTP_HOST: a warning at start names DATA_DIR/mail; each message is a 0600 .eml
    file in that 0700 folder, and its link works."""
    settings = make_settings(database_url, tmp_path)
    with caplog.at_level(logging.WARNING, logger="gatehouse"):
        async with serving(settings, clock) as (services, client):
            await register(client, email=EMAIL)
            await client.post("/auth/password/forgot", json={"email": EMAIL})
            await drained(services)
            folder = tmp_path / "mail"
            (file,) = folder.glob("*.eml")
            assert stat.S_IMODE(folder.stat().st_mode) == 0o700
            assert stat.S_IMODE(file.stat().st_mode) == 0o600
            message = message_from_bytes(file.read_bytes(), policy=policy.default)
            assert isinstance(message, EmailMessage)
            response = await client.post(
                "/auth/password/reset",
                json={"token": token_in(message), "new_password": NEW_PASSWORD},
            )
            assert response.status_code == 204
    assert any(
        "GATEHOUSE_SMTP_HOST is not set" in r.getMessage() and str(folder) in r.getMessage()
        for r in caplog.records
    )


async def test_template_files_in_the_templates_dir_replace_the_built_in_ones(
    database_url: str, tmp_path: Path, clock: ManualClock, mailbox: Mailbox
) -> None:
    """password_reset.subject and .txt from GATEHOUSE_MAIL_TEMPLATES_DIR are used, with
    their placeholders filled; the HTML part, not overridden, stays built-in."""
    templates = tmp_path / "templates"
    templates.mkdir()
    (templates / "password_reset.subject").write_text("Custom reset for $username")
    (templates / "password_reset.txt").write_text("Go to $link (valid $valid_for). $$5 off!\n")
    settings = mail_settings(database_url, tmp_path, mailbox, mail_templates_dir=templates)
    async with serving(settings, clock) as (_, client):
        await register(client, email=EMAIL)
        token = await reset_mail(client, mailbox, EMAIL)
    (message,) = await mailbox.wait_for(1)
    assert message["Subject"] == "Custom reset for alice"
    assert text_of(message).startswith(
        f"Go to https://auth.example.test/reset-password?token={token} (valid 30 minutes). $5 off!"
    )
    html = message.get_body(preferencelist=("html",))
    assert html is not None
    assert "Choose a new password" in str(html.get_content())


@pytest.mark.parametrize(
    ("source", "complaint"),
    [("Hello $name", "unknown placeholders: name"), ("Costs $5", "malformed placeholder")],
)
def test_a_template_override_with_an_unknown_or_malformed_placeholder_stops_the_start(
    tmp_path: Path, source: str, complaint: str
) -> None:
    """Building the services fails with MailTemplateError naming the file and the problem."""
    (tmp_path / "verify_email.txt").write_text(source)
    settings = make_settings(
        "sqlite:///" + str(tmp_path / "x.db"), tmp_path, mail_templates_dir=tmp_path
    )
    with pytest.raises(MailTemplateError, match=r"verify_email\.txt") as raised:
        build_services(settings)
    assert complaint in str(raised.value)


async def test_queued_mail_is_encrypted_at_rest(
    database_url: str, tmp_path: Path, clock: ManualClock
) -> None:
    """A waiting message's row holds neither the address, the link nor the token."""
    settings = mail_settings(database_url, tmp_path, Mailbox())  # SMTP down: the mail waits
    async with serving(settings, clock) as (services, client):
        await register(client, email=EMAIL)
        await client.post("/auth/password/forgot", json={"email": EMAIL})

        async def mail_waiting() -> bool:
            rows = await _outbox_rows(services)
            return len(rows) == 1 and rows[0].kind == "mail" and rows[0].last_error is not None

        await _until(mail_waiting, services)
        (row,) = await _outbox_rows(services)
    payload = bytes(row.payload)
    for secret in (b"alice@", b"reset-password", b"ghr_", b"token"):
        assert secret not in payload


async def test_a_message_past_its_expiry_is_dropped_with_a_warning(
    database_url: str, tmp_path: Path, clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    """A reset mail that could not go out before its link expired is deleted, not sent."""
    box = Mailbox()
    settings = mail_settings(database_url, tmp_path, box)
    async with serving(settings, clock) as (services, client):
        await register(client, email=EMAIL)
        await client.post("/auth/password/forgot", json={"email": EMAIL})

        async def mail_waiting() -> bool:
            rows = await _outbox_rows(services)
            return len(rows) == 1 and rows[0].kind == "mail" and rows[0].last_error is not None

        await _until(mail_waiting, services)
        box.start()
        try:
            clock.advance(settings.reset_token_ttl)
            with caplog.at_level(logging.WARNING, logger="gatehouse"):
                await drained(services)
            assert box.count() == 0
        finally:
            box.stop()
    assert any("expired before it could be done" in r.getMessage() for r in caplog.records)
    assert not any(EMAIL in r.getMessage() for r in caplog.records)


async def test_two_workers_on_one_database_send_each_message_once(
    database_url: str, tmp_path: Path, clock: ManualClock, mailbox: Mailbox
) -> None:
    """Two processes' outboxes working the same rows at once deliver every message exactly
    once (the claim is a compare-and-swap)."""
    settings = mail_settings(database_url, tmp_path, mailbox)
    first = build_services(settings, clock=clock)
    second = build_services(settings, clock=clock)
    try:
        await truncate_all(first.db)
        rows = SqlOutboxRepository(first.db)
        expires = clock.now() + timedelta(minutes=5)
        for n in range(20):
            message = MailMessage(to=f"user{n}@example.com", subject="s", text="t", html="<p>h</p>")
            await rows.add(first.outbox.mail_item(message, expires_at=expires))
        done = await asyncio.gather(first.outbox.process_due(), second.outbox.process_due())
        assert sum(done) == 20
        messages = await mailbox.wait_for(20)
        assert len({m["Message-ID"] for m in messages}) == 20
        assert sorted(r[0] for r in mailbox.recipients) == sorted(
            f"user{n}@example.com" for n in range(20)
        )
        assert await first.outbox.depth() == 0
    finally:
        await first.close()
        await second.close()


async def test_depth_counts_what_waits_in_the_outbox(
    database_url: str, tmp_path: Path, clock: ManualClock
) -> None:
    """`outbox.depth()` (the gauge's source) is the number of waiting items."""
    settings = mail_settings(database_url, tmp_path, Mailbox())
    services = build_services(settings, clock=clock)
    try:
        await truncate_all(services.db)
        assert await services.outbox.depth() == 0
        expires = clock.now() + timedelta(minutes=5)
        for _ in range(3):
            await services.outbox.enqueue("password_reset", {"email": EMAIL}, expires_at=expires)
        assert await services.outbox.depth() == 3
    finally:
        await services.close()


def test_settings_name_smtp_security_modes(tmp_path: Path) -> None:
    """starttls is the default; tls and none are accepted; anything else is refused."""
    settings: Settings = make_settings("sqlite:///" + str(tmp_path / "x.db"), tmp_path)
    assert settings.smtp_security == "starttls"
    assert make_settings("sqlite://", tmp_path, smtp_security="tls").smtp_security == "tls"
    with pytest.raises(ValueError, match="smtp_security"):
        make_settings("sqlite://", tmp_path, smtp_security="ssl")


class _RefusingHandler:
    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: Any
    ) -> str:
        return "550 5.1.1 No such user"


async def test_a_message_the_server_refuses_for_good_is_dropped_not_retried(
    database_url: str, tmp_path: Path, clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    """A 5xx for the recipient ends the message at once (a warning, no retry)."""
    port = free_port()
    controller = Controller(_RefusingHandler(), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        settings = make_settings(
            database_url, tmp_path, smtp_host="127.0.0.1", smtp_port=port, smtp_security="none"
        )
        with caplog.at_level(logging.WARNING, logger="gatehouse"):
            async with serving(settings, clock) as (services, client):
                await register(client, email=EMAIL)
                await client.post("/auth/password/forgot", json={"email": EMAIL})
                await drained(services)
    finally:
        controller.stop()
    assert any("refused it (SMTP 550)" in r.getMessage() for r in caplog.records)
    assert not any("next try in" in r.getMessage() for r in caplog.records)
