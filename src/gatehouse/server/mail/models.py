"""Messages and outbox items as the mail concern sees them: plain frozen dataclasses."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

# The outbox item that is a message ready to send; every other kind is a job that a
# registered handler resolves (and that may queue messages).
MAIL = "mail"


@dataclass(frozen=True, slots=True)
class MailMessage:
    """One message to one recipient: a plain-text body and its HTML alternative."""

    to: str
    subject: str
    text: str
    html: str


@dataclass(frozen=True, slots=True)
class NewOutboxItem:
    """A row to insert into the outbox; `payload` is sealed (encrypted) already."""

    id: UUID
    kind: str
    payload: bytes
    created_at: datetime
    next_attempt_at: datetime
    # Past this the item is dropped, not tried (a mail whose link has expired).
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class ClaimedItem:
    """An outbox item one worker holds: its `next_attempt_at` was set to `lease` by a
    compare-and-swap, so no other worker takes it until the lease runs out. Finishing or
    rescheduling it is again conditional on `lease`."""

    id: UUID
    kind: str
    payload: bytes
    created_at: datetime
    expires_at: datetime
    # Tries so far, this one included.
    attempts: int
    lease: datetime
