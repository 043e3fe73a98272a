"""What the accounts services need from storage. `server/storage` implements it."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol
from uuid import UUID

from gatehouse.server.accounts.models import NewUser, User, UserChanges, UserCredentials


class UserRepository(Protocol):
    async def add(self, new: NewUser) -> User:
        """Insert a user. Raises UsernameTakenError when the canonical name exists."""
        ...

    async def find(self, user_id: UUID) -> User | None: ...

    async def find_credentials(self, username_canonical: str) -> UserCredentials | None: ...

    async def find_credentials_by_id(self, user_id: UUID) -> UserCredentials | None: ...

    async def update(self, user_id: UUID, changes: UserChanges, now: datetime) -> User | None:
        """Apply changes; deactivating revokes the user's sessions in the same transaction."""
        ...

    async def set_password_hash(
        self,
        user_id: UUID,
        password_hash: str,
        now: datetime,
        *,
        revoke_sessions_except: UUID | None = None,
        revoke_sessions: bool = False,
    ) -> None:
        """Store a new hash; optionally revoke sessions (all but one) in the same transaction."""
        ...

    async def list(
        self, *, prefix: str | None, role: str | None, limit: int, after: str | None
    ) -> list[User]:
        """Users ordered by canonical username, those after `after` only."""
        ...

    async def delete(self, user_id: UUID, now: datetime) -> bool: ...
