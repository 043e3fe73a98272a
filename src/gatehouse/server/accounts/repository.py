"""What the accounts services need from storage. `server/storage` implements it."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol
from uuid import UUID

from gatehouse.server.accounts.models import (
    AccountToken,
    NewAccountToken,
    NewUser,
    TokenPurpose,
    User,
    UserChanges,
    UserCredentials,
)
from gatehouse.server.mail.models import ClaimedItem, NewOutboxItem


class UserRepository(Protocol):
    async def add(self, new: NewUser) -> User:
        """Insert a user. Raises UsernameTakenError when the canonical name exists."""
        ...

    async def find(self, user_id: UUID) -> User | None: ...

    async def find_credentials(self, username_canonical: str) -> UserCredentials | None: ...

    async def find_credentials_by_id(self, user_id: UUID) -> UserCredentials | None: ...

    async def find_by_email(self, email_canonical: str) -> User | None:
        """The user holding this canonical address, or None."""
        ...

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
        replacing: str | None = None,
    ) -> None:
        """Store a new hash; optionally revoke sessions (all but one) in the same transaction.

        With `revoke_sessions` (a password change, not a re-hash) the user's live reset
        tokens end in that transaction too: a link mailed before the change cannot undo it.
        With `replacing` (a re-hash) the hash is stored only while the stored one is still
        `replacing`.
        """
        ...

    async def list(
        self, *, prefix: str | None, role: str | None, limit: int, after: str | None
    ) -> list[User]:
        """Users ordered by canonical username, those after `after` only."""
        ...

    async def delete(self, user_id: UUID, now: datetime) -> bool: ...


class AccountTokenRepository(Protocol):
    """Single-use reset and verification tokens, stored as digests (`account_tokens`)."""

    async def issue(self, token: NewAccountToken, *, mail: NewOutboxItem, job: ClaimedItem) -> bool:
        """In one transaction: finish `job` (it must still be held under its lease), end
        the user's live tokens of the same purpose, store `token` and queue `mail`.

        Returns False, having written nothing, when the job's lease was lost (another
        worker holds it now).
        """
        ...

    async def find_live(
        self, purpose: TokenPurpose, digest: bytes, now: datetime
    ) -> AccountToken | None:
        """The unused, unexpired token of this purpose and digest, with its (active) user."""
        ...

    async def reset_password(self, token: AccountToken, password_hash: str, now: datetime) -> bool:
        """In one transaction: use up the reset token (if it is still live), store the new
        hash, revoke every session of the user and end their other reset tokens.

        Returns False, having written nothing, when the token is no longer live.
        """
        ...

    async def verify_email(self, token: AccountToken, now: datetime) -> bool:
        """In one transaction: use up the verification token (if it is still live) and mark
        the user's address verified, if it is still the address the token proves.

        Returns False, having written nothing, otherwise.
        """
        ...

    async def prune(self, now: datetime) -> int:
        """Delete tokens that expired before `now`; return how many."""
        ...
