"""The durable outbox: work that must happen outside the request, done until it is done.

A request never talks to a mail server. It inserts a row (`mail_outbox`) and answers; a
background worker in every server process (`MailOutbox.run`, started by `Services.start`)
takes due rows and works them off:

- a row of kind `mail` is a message: built as a multipart/alternative `EmailMessage`
  (plain text + HTML) from the configured sender and handed to the transport;
- any other kind is a job (e.g. `password_reset`: resolve an address, mint a token, queue
  its mail) handled by the function registered for it (`register`); a handler finishes
  its item in the transaction of its own writes, so a job's effects and its removal
  commit together.

Durability: the row is the only copy of the work. Its `payload` is sealed with Fernet
under a key derived from the server secret (`gatehouse mail outbox v1`): a queued reset
mail holds a live link, and a copy of the database must not give it away.

Once only, in the normal case: a worker claims a row by a compare-and-swap on
`next_attempt_at` (set to now + lease), so two workers, processes or hosts never hold
it at once; success deletes the row (conditional on that lease). A worker that dies
mid-send leaves the row to be retried when the lease runs out, so a message can go out
twice only if a process dies between handing it to the server and deleting the row.

Failures are retried with backoff: 5 s after the first, doubling, at most 60 s between
tries. A row past its `expires_at` (a message whose link has expired) is dropped with a
warning, as is one the server refused for good (SMTP 5xx) or one sealed under another
secret. The worker wakes at once when this process queues something and polls every
second otherwise (for rows queued by other processes and retries falling due).

Log lines name an item's id and kind, never its recipient or content.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import uuid
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from typing import Any

from cryptography.fernet import Fernet, InvalidToken

from gatehouse.server.clock import Clock
from gatehouse.server.mail.models import MAIL, ClaimedItem, MailMessage, NewOutboxItem
from gatehouse.server.mail.repository import OutboxRepository
from gatehouse.server.mail.transports import MailRejectedError, MailTransport

log = logging.getLogger("gatehouse")

Handler = Callable[[ClaimedItem, dict[str, Any]], Awaitable[None]]

FIRST_RETRY_SECONDS = 5.0
MAX_RETRY_SECONDS = 60.0
POLL_SECONDS = 1.0
# Items one pass works off before it lets the loop breathe (it goes on at once).
_BATCH = 50


def retry_delay(attempts: int) -> timedelta:
    """The wait after the `attempts`-th failed try: 5 s, 10 s, 20 s, 40 s, then 60 s."""
    seconds = FIRST_RETRY_SECONDS * 2 ** max(0, min(attempts - 1, 10))
    return timedelta(seconds=min(seconds, MAX_RETRY_SECONDS))


def outbox_cipher(key: bytes) -> Fernet:
    """Fernet over a 32-byte key derived from the server secret."""
    return Fernet(base64.urlsafe_b64encode(key))


class MailOutbox:
    """Queues outbox items and runs the worker that delivers and resolves them."""

    def __init__(
        self,
        *,
        repository: OutboxRepository,
        transport: MailTransport,
        cipher: Fernet,
        sender: str,
        clock: Clock,
        lease: timedelta,
        message_id_domain: str,
    ) -> None:
        self._repo = repository
        self._transport = transport
        self._cipher = cipher
        self._sender = sender
        self._clock = clock
        self._lease = lease
        self._domain = message_id_domain
        self._handlers: dict[str, Handler] = {}
        self._wake = asyncio.Event()

    @property
    def transport(self) -> MailTransport:
        return self._transport

    def register(self, kind: str, handler: Handler) -> None:
        """Have `handler` resolve items of `kind`. It receives the claimed item and its
        opened payload, and finishes the item in its own transaction (or raises, and the
        item is retried); an item it leaves unfinished is deleted after it returns."""
        if kind == MAIL or kind in self._handlers:
            raise ValueError(f"outbox kind {kind!r} is taken")
        self._handlers[kind] = handler

    # --- queueing ----------------------------------------------------------------------

    def item(self, kind: str, data: Mapping[str, Any], *, expires_at: datetime) -> NewOutboxItem:
        """A sealed item, due now, for a repository to insert (alone, via `enqueue`, or in
        the transaction of another write)."""
        now = self._clock.now()
        payload = self._cipher.encrypt(json.dumps(dict(data), separators=(",", ":")).encode())
        return NewOutboxItem(
            id=uuid.uuid4(),
            kind=kind,
            payload=payload,
            created_at=now,
            next_attempt_at=now,
            expires_at=expires_at,
        )

    def mail_item(self, message: MailMessage, *, expires_at: datetime) -> NewOutboxItem:
        """A message as an item; its Message-ID is fixed now, so retries keep it."""
        data = {
            "to": message.to,
            "subject": message.subject,
            "text": message.text,
            "html": message.html,
            "message_id": make_msgid(domain=self._domain),
        }
        return self.item(MAIL, data, expires_at=expires_at)

    async def enqueue(self, kind: str, data: Mapping[str, Any], *, expires_at: datetime) -> None:
        """Insert one item and wake this process's worker.

        Raises:
            StorageUnavailableError: the database cannot be reached.
        """
        await self._repo.add(self.item(kind, data, expires_at=expires_at))
        self.wake()

    def wake(self) -> None:
        """Have the worker look for due items now (something was queued)."""
        self._wake.set()

    async def depth(self) -> int:
        """Items waiting in the outbox (for the `gatehouse_mail_outbox_depth` gauge).

        Raises:
            StorageUnavailableError: the database cannot be reached.
        """
        return await self._repo.depth()

    # --- the worker --------------------------------------------------------------------

    async def run(self) -> None:
        """Work off due items until cancelled (the background task of `Services.start`)."""
        failing = False
        while True:
            self._wake.clear()
            try:
                worked = await self.process_due()
            except Exception:  # a background loop must outlive any one failure
                # Once per outage, not once a second while the database is down.
                if not failing:
                    log.warning("the mail outbox could not be read; will retry", exc_info=True)
                failing = True
                worked = 0
            else:
                if failing:
                    log.info("the mail outbox can be read again")
                failing = False
            if worked >= _BATCH:
                await asyncio.sleep(0)
                continue
            # asyncio.timeout, not wait_for: Python 3.11's wait_for loses a cancellation
            # that arrives as the event is set, and the task would then never stop.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(POLL_SECONDS):
                    await self._wake.wait()

    async def process_due(self) -> int:
        """Claim and work off due items, one at a time, up to a batch; return how many.

        Raises:
            StorageUnavailableError: the database cannot be reached.
        """
        done = 0
        while done < _BATCH:
            now = self._clock.now()
            item = await self._repo.claim_next(now, now + self._lease)
            if item is None:
                break
            await self._work(item)
            done += 1
        return done

    async def _work(self, item: ClaimedItem) -> None:
        if self._clock.now() >= item.expires_at:
            log.warning(
                "dropped outbox item %s (%s) after %d tries: it expired before it could be done",
                item.id,
                item.kind,
                item.attempts - 1,
            )
            await self._repo.complete(item)
            return
        try:
            data = json.loads(self._cipher.decrypt(item.payload))
        except (InvalidToken, ValueError):
            log.warning(
                "dropped outbox item %s (%s): it cannot be opened (sealed under another "
                "server secret?)",
                item.id,
                item.kind,
            )
            await self._repo.complete(item)
            return
        try:
            if item.kind == MAIL:
                await self._transport.send(self._compose(data))
            elif (handler := self._handlers.get(item.kind)) is not None:
                await handler(item, data)
            else:
                log.warning("dropped outbox item %s of unknown kind %s", item.id, item.kind)
        except MailRejectedError as exc:
            log.warning("dropped message %s: the mail server refused it (%s)", item.id, exc)
        except Exception as exc:  # any failure of one item: retried, the worker goes on
            await self._retry(item, exc)
            return
        await self._repo.complete(item)

    async def _retry(self, item: ClaimedItem, exc: Exception) -> None:
        delay = retry_delay(item.attempts)
        error = _describe(exc)
        log.warning(
            "outbox item %s (%s) failed on try %d (%s); next try in %d s",
            item.id,
            item.kind,
            item.attempts,
            error,
            delay.total_seconds(),
        )
        await self._repo.retry(item, self._clock.now() + delay, error)

    def _compose(self, data: Mapping[str, str]) -> EmailMessage:
        message = EmailMessage()
        message["From"] = self._sender
        message["To"] = data["to"]
        message["Subject"] = data["subject"]
        message["Date"] = format_datetime(self._clock.now())
        message["Message-ID"] = data["message_id"]
        # RFC 3834: a machine's message; autoresponders must not answer it.
        message["Auto-Submitted"] = "auto-generated"
        message.set_content(data["text"])
        message.add_alternative(data["html"], subtype="html")
        return message


def _describe(exc: Exception) -> str:
    """A failure's class (and SMTP code), never its text: that may quote an address."""
    code = getattr(exc, "smtp_code", None)
    name = type(exc).__name__
    return f"{name} {code}" if isinstance(code, int) else name
