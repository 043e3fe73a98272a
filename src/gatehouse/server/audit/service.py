"""Reading and pruning the audit trail: what `GET /admin/audit` and `gatehouse audit prune`
call. Recording is the recorder's (`AuditRecorder`, stored by `storage/audit.py`).

Nothing here edits an event: the trail is append-only, and only age removes events.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from uuid import UUID

from gatehouse.server.audit.clean import clean_text
from gatehouse.server.audit.models import EVENT_TYPES
from gatehouse.server.audit.repository import AuditQuery, AuditRepository, StoredEvent
from gatehouse.server.clock import Clock
from gatehouse.server.errors import InvalidInputError
from gatehouse.server.pagination import decode_time_cursor, encode_time_cursor

# RFC 3339 s5.6 date-time: a full date, a full time, an offset (Z or +hh:mm). Python's own
# parser would also take a bare date, or no offset at all, which is not an instant.
_RFC3339 = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?(?:[Zz]|[+-]\d{2}:\d{2})"
)
# Rows per pruning transaction: a few milliseconds of work on SQLite.
_PRUNE_BATCH = 1000


@dataclass(frozen=True, slots=True)
class AuditPage:
    items: list[StoredEvent]
    next_cursor: str | None


def parse_instant(value: str, *, field: str) -> datetime:
    """An RFC 3339 date-time (with its offset) as a UTC datetime.

    Raises:
        InvalidInputError: naming `field`, for anything else.
    """
    if len(value) > 40 or _RFC3339.fullmatch(value) is None:
        raise InvalidInputError(
            "Expected an RFC 3339 date-time with an offset, like 2026-01-31T12:00:00Z.",
            field=field,
        )
    # Python 3.11 reads at most 6 fraction digits and wants an upper-case Z.
    head, dot, rest = value.partition(".")
    if dot:
        digits = len(rest) - len(rest.lstrip("0123456789"))
        rest = rest[: min(digits, 6)] + rest[digits:]
        value = f"{head}.{rest}"
    try:
        return datetime.fromisoformat(value.replace("z", "Z")).astimezone(UTC)
    # ValueError: a month 13, a day 32, an hour 25; OverflowError: an offset that takes
    # it past year 1 or 9999 in UTC (0001-01-01T00:00:00+01:00).
    except (ValueError, OverflowError):
        raise InvalidInputError("The date-time does not exist.", field=field) from None


def _keyset(cursor: str) -> tuple[datetime, UUID]:
    """The (time, id) after which a page starts, in UTC.

    Raises:
        InvalidInputError: on `cursor`, for one that is not ours, or names an instant
            outside what UTC can hold (a forged 0001-01-01T00:00:00+14:00).
    """
    at, last_id = decode_time_cursor(cursor)
    try:
        return at.astimezone(UTC), last_id
    except OverflowError:
        raise InvalidInputError("The cursor is malformed.", field="cursor") from None


class AuditService:
    """Search the trail (admins) and delete what is older than the retention."""

    def __init__(self, *, events: AuditRepository, clock: Clock, retention: timedelta) -> None:
        self._events = events
        self._clock = clock
        self._retention = retention

    async def search(
        self,
        *,
        type: str | None = None,
        actor: str | None = None,
        subject: str | None = None,
        since: str | None = None,
        until: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> AuditPage:
        """One page of events, newest first, matching every filter given.

        `actor` and `subject` are ids (a user's, a device's, a session's...); `since` and
        `until` RFC 3339 instants (`since` inclusive, `until` exclusive).

        Raises:
            InvalidInputError: naming the field: an unknown type, a malformed instant or
                cursor.
        """
        if type is not None and type not in EVENT_TYPES:
            raise InvalidInputError("Not a documented event type.", field="type")
        for name, value in (("actor", actor), ("subject", subject)):
            # Stored ids never hold these (`clean.py` strips them), and PostgreSQL refuses
            # a NUL in any string, so such a filter is malformed rather than a 500.
            if value is not None and clean_text(value, len(value)) != value:
                raise InvalidInputError("The id has control characters.", field=name)
        query = AuditQuery(
            type=type,
            actor_id=actor,
            subject_id=subject,
            since=parse_instant(since, field="since") if since is not None else None,
            until=parse_instant(until, field="until") if until is not None else None,
        )
        before = _keyset(cursor) if cursor else None
        found = await self._events.search(query, limit=limit + 1, before=before)
        items = found[:limit]
        more = len(found) > limit
        next_cursor = encode_time_cursor(items[-1].time, items[-1].id) if more else None
        return AuditPage(items=items, next_cursor=next_cursor)

    async def prune(self, older_than: timedelta) -> int:
        """Delete events older than `older_than`, in small transactions; return how many.

        Raises:
            InvalidInputError: `older_than` is not positive.
        """
        if older_than <= timedelta(0):
            raise InvalidInputError("The age must be positive.", field="older_than")
        try:
            before = self._clock.now() - older_than
        except OverflowError:  # older than year 1: there is nothing that old
            return 0
        total = 0
        while deleted := await self._events.delete_before(before, limit=_PRUNE_BATCH):
            total += deleted
            await asyncio.sleep(0)
        return total

    async def prune_expired(self) -> int:
        """Delete events older than the retention (`GATEHOUSE_AUDIT_RETENTION`); 0 keeps
        every event."""
        if self._retention <= timedelta(0):
            return 0
        return await self.prune(self._retention)
