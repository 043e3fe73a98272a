"""How a message leaves: SMTP, or a `.eml` file when no SMTP server is configured.

`SmtpTransport` uses the standard library's `smtplib` on a worker thread (`asyncio.to_thread`):
the outbox worker sends one message at a time, a few per minute at most, so a thread per
send costs nothing that matters, and smtplib is the most widely deployed client there is
(no extra dependency, as aiosmtplib would be, for no gain at this volume). Security:

- `starttls` (default): plain connection, then STARTTLS with certificate and host-name
  checks (the system's trust store); a server that does not offer STARTTLS fails the send,
  it is never fallen back to plain text;
- `tls`: TLS from the first byte (SMTPS, usually port 465), same checks;
- `none`: plain text, for a relay on localhost or a test server only.

`FileTransport` writes each message to `DATA_DIR/mail/<time>-<id>.eml` (folder 0700, files
0600: a message holds a live link) for a developer to open.

A send that the server refuses for good (a 5xx answer: an unknown recipient, a refused
sender) raises `MailRejectedError`, which the outbox drops rather than retries; anything
else (a refused connection, a timeout, a 4xx) is retried.
"""

from __future__ import annotations

import asyncio
import os
import smtplib
import ssl
from datetime import UTC, datetime
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from pathlib import Path
from typing import Literal, Protocol
from uuid import uuid4

SmtpSecurity = Literal["starttls", "tls", "none"]


class MailRejectedError(Exception):
    """The server refused the message permanently (SMTP 5xx); retrying cannot help."""

    def __init__(self, code: int) -> None:
        super().__init__(f"SMTP {code}")
        self.code = code


class MailTransport(Protocol):
    @property
    def description(self) -> str:
        """Where mail goes, for the start-up log (never a credential)."""
        ...

    async def send(self, message: EmailMessage) -> None:
        """Hand one message on.

        Raises:
            MailRejectedError: refused for good.
            Exception: any other failure, to be retried.
        """
        ...


class SmtpTransport:
    def __init__(
        self,
        *,
        host: str,
        port: int,
        security: SmtpSecurity,
        username: str | None,
        password: str | None,
        timeout: float,
        tls_context: ssl.SSLContext | None = None,
    ) -> None:
        """`tls_context` replaces the default (the system's trust store, host names
        checked), e.g. to trust a private CA."""
        self._tls_context = tls_context
        self._host = host
        self._port = port
        self._security = security
        self._username = username
        self._password = password
        self._timeout = timeout

    @property
    def description(self) -> str:
        return f"SMTP {self._host}:{self._port} ({self._security})"

    async def send(self, message: EmailMessage) -> None:
        await asyncio.to_thread(self._send, message)

    def _send(self, message: EmailMessage) -> None:
        context = self._tls_context or ssl.create_default_context()
        client: smtplib.SMTP
        if self._security == "tls":
            client = smtplib.SMTP_SSL(
                self._host, self._port, timeout=self._timeout, context=context
            )
        else:
            client = smtplib.SMTP(self._host, self._port, timeout=self._timeout)
        with client:
            if self._security == "starttls":
                # Raises SMTPNotSupportedError when STARTTLS is not offered: no plain text.
                client.starttls(context=context)
            if self._username is not None:
                client.login(self._username, self._password or "")
            try:
                client.send_message(message)
            except smtplib.SMTPRecipientsRefused as exc:
                codes = [code for code, _ in exc.recipients.values()]
                if codes and all(code >= 500 for code in codes):
                    raise MailRejectedError(codes[0]) from None
                raise
            except (smtplib.SMTPSenderRefused, smtplib.SMTPDataError) as exc:
                if exc.smtp_code >= 500:
                    raise MailRejectedError(exc.smtp_code) from None
                raise


class FileTransport:
    """Each message as an `.eml` file in `directory` (created 0700; files 0600)."""

    def __init__(self, directory: Path) -> None:
        self._directory = directory

    @property
    def description(self) -> str:
        return f".eml files in {self._directory}"

    async def send(self, message: EmailMessage) -> None:
        await asyncio.to_thread(self._write, message)

    def _write(self, message: EmailMessage) -> None:
        if not self._directory.is_dir():
            self._directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            os.chmod(self._directory, 0o700)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        name = f"{stamp}-{uuid4().hex[:12]}"
        partial = self._directory / f".{name}.partial"
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(message.as_bytes(policy=SMTP_POLICY))
        # Renamed when complete, so a reader never sees half a message.
        partial.rename(self._directory / f"{name}.eml")
