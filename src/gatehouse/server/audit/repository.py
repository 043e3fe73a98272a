"""What the audit trail needs from storage: the stored events, searched and pruned."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol
from uuid import UUID

from gatehouse.server.audit.models import AuditEvent


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """An event as the trail holds it: its id, and the event with its time filled in."""

    id: UUID
    event: AuditEvent

    @property
    def time(self) -> datetime:
        assert self.event.at is not None  # noqa: S101 - every stored event has its time
        return self.event.at


@dataclass(frozen=True, slots=True)
class AuditQuery:
    """The filters of a search; None matches everything. `since` is inclusive, `until`
    exclusive, so consecutive windows neither overlap nor leave a gap."""

    type: str | None = None
    actor_id: str | None = None
    subject_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None


class AuditRepository(Protocol):
    async def search(
        self, query: AuditQuery, *, limit: int, before: tuple[datetime, UUID] | None
    ) -> list[StoredEvent]:
        """At most `limit` matching events, newest first (by time, then id), each older
        than `before` (a page's last item) when given."""
        ...

    async def delete_before(self, before: datetime, *, limit: int) -> int:
        """Delete at most `limit` events older than `before`; return how many."""
        ...
