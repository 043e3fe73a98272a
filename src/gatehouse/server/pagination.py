"""Opaque page cursors: the sort key of a page's last item, URL-safe base64 encoded.

Clients pass `next_cursor` back as `cursor` and must not read it; a cursor that does not
decode is an `InvalidInputError` on the `cursor` field.
"""

from __future__ import annotations

import base64
import binascii
from datetime import UTC, datetime
from typing import Protocol, TypeVar
from uuid import UUID

from gatehouse.server.errors import InvalidInputError


def encode_cursor(sort_key: str) -> str:
    return base64.urlsafe_b64encode(sort_key.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> str:
    """Raises: InvalidInputError when the cursor is not one of ours."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        return base64.b64decode(padded.encode("ascii"), altchars=b"-_", validate=True).decode()
    except (binascii.Error, UnicodeError, ValueError) as exc:
        raise InvalidInputError("The cursor is malformed.", field="cursor") from exc


def encode_time_cursor(created_at: datetime, item_id: UUID) -> str:
    """The cursor after an item of a list in (created_at, id) order."""
    return encode_cursor(f"{created_at.isoformat()}|{item_id}")


def decode_time_cursor(cursor: str) -> tuple[datetime, UUID]:
    """Raises: InvalidInputError when the cursor is not one of `encode_time_cursor`'s."""
    created, _, item_id = decode_cursor(cursor).partition("|")
    try:
        at = datetime.fromisoformat(created)
        if at.tzinfo is None:
            raise ValueError("a naive timestamp")
        # In UTC now: a forged offset that pushes the instant past year 1 or 9999 is a
        # malformed cursor, not an overflow where the database layer converts it.
        return at.astimezone(UTC), UUID(item_id)
    except (ValueError, OverflowError):
        raise InvalidInputError("The cursor is malformed.", field="cursor") from None


class _Dated(Protocol):
    @property
    def created_at(self) -> datetime: ...

    @property
    def id(self) -> UUID: ...


D = TypeVar("D", bound=_Dated)


def time_page(fetched: list[D], limit: int) -> tuple[list[D], str | None]:
    """A page from `limit + 1` rows in (created_at, id) order: its items, and the cursor
    after its last item when there is more (the extra row only says so)."""
    items = fetched[:limit]
    more = len(fetched) > limit
    return items, encode_time_cursor(items[-1].created_at, items[-1].id) if more else None
