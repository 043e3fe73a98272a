"""What the mail outbox needs from storage. `server/storage/outbox.py` implements it."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from gatehouse.server.mail.models import ClaimedItem, NewOutboxItem


class OutboxRepository(Protocol):
    async def add(self, item: NewOutboxItem) -> None:
        """Insert one item (committed when this returns)."""
        ...

    async def claim_next(self, now: datetime, lease: datetime) -> ClaimedItem | None:
        """Take the oldest due item (`next_attempt_at <= now`): set its `next_attempt_at`
        to `lease` and count the attempt, if no other worker changed it first (compare
        and swap on `next_attempt_at`). None when nothing is due."""
        ...

    async def complete(self, item: ClaimedItem) -> bool:
        """Delete a held item; False when its lease was lost (another worker has it)."""
        ...

    async def retry(self, item: ClaimedItem, at: datetime, error: str) -> bool:
        """Schedule a held item's next try; False when its lease was lost."""
        ...

    async def depth(self) -> int:
        """Items in the outbox: messages waiting to go out, jobs waiting to be resolved."""
        ...
