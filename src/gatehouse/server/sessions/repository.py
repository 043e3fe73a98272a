"""What the session service needs from storage. `server/storage` implements it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol
from uuid import UUID

from gatehouse.server.accounts.models import User
from gatehouse.server.sessions.models import RefreshLookup, Session


class SessionRepository(Protocol):
    async def create(
        self, session: Session, refresh_digest: bytes, cookie_digest: bytes | None = None
    ) -> None: ...

    async def stands(self, session_id: UUID, *, user_as_of: datetime, now: datetime) -> bool:
        """Whether a session just created is live and its user still as it was read
        (`updated_at` equal to `user_as_of`, active); if not, the session is revoked."""
        ...

    async def find_cookie_session(
        self, cookie_digest: bytes, *, now: datetime
    ) -> tuple[User, Session] | None:
        """The live session (unrevoked, within both expiries) of this cookie digest and its
        active user, in one round trip; None otherwise."""
        ...

    async def touch(
        self, session_id: UUID, *, now: datetime, refresh_expires_at: datetime, not_since: datetime
    ) -> None:
        """Record a use of a live session: last_used_at = now and the idle expiry moved to
        `refresh_expires_at`, unless it was already used at or after `not_since`."""
        ...

    async def find_by_refresh(self, digest: bytes) -> RefreshLookup | None:
        """The session whose current or any earlier refresh token has this digest."""
        ...

    async def swap_refresh(
        self,
        session_id: UUID,
        old_digest: bytes,
        new_digest: bytes,
        *,
        now: datetime,
        refresh_expires_at: datetime,
    ) -> bool:
        """Atomically replace the current refresh digest if it is still `old_digest`.

        Returns False when another request rotated it first or the session was revoked;
        exactly one of any number of concurrent swaps of one digest returns True.
        """
        ...

    async def revoke(self, session_id: UUID, user_id: UUID, *, now: datetime, reason: str) -> bool:
        """Revoke a live session of `user_id`. False if none matched."""
        ...

    async def revoke_all(
        self, user_id: UUID, *, now: datetime, reason: str, except_session: UUID | None = None
    ) -> int: ...

    async def list_active(self, user_id: UUID, *, now: datetime) -> list[Session]: ...

    async def count_active(self, *, now: datetime) -> int:
        """How many sessions of all users are live at `now`: unrevoked, within both
        expiries (the `gatehouse_active_sessions` gauge)."""
        ...

    async def delete_ended(self, before: datetime, *, limit: int) -> int:
        """Delete up to `limit` rows of sessions that ended (revoked, or past their refresh
        expiry) before `before`: their refresh-token history first, then the sessions.
        Returns how many rows went; call again until it returns 0."""
        ...

    async def find_principal(
        self, session_id: UUID, user_id: UUID, *, now: datetime
    ) -> tuple[User, datetime] | None:
        """The active user of a live session and the session's absolute expiry, in one
        round trip; None if the session or the user is not live."""
        ...


@dataclass(frozen=True, slots=True)
class Invalidation:
    """A write that ended a session or changed a user, as the invalidation log holds it."""

    seq: int
    user_id: UUID
    created_at: datetime


class InvalidationFeed(Protocol):
    async def listen(
        self, on_invalidated: Callable[[set[UUID]], None], ready: Callable[[], None]
    ) -> None:
        """Deliver the user ids of invalidations as any process commits them, until
        cancelled (`ready` once listening); return at once if the store cannot push.

        Raises:
            StorageUnavailableError: the push channel could not be opened or was lost.
        """
        ...

    async def recent(self, since: datetime) -> list[Invalidation]:
        """Invalidations recorded at or after `since`, by any process."""
        ...

    async def prune(self, before: datetime) -> int:
        """Delete invalidations older than `before`."""
        ...
