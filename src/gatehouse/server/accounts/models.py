"""Account records as the services see them: plain frozen dataclasses."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal
from uuid import UUID

ADMIN_ROLE = "admin"
USER_ROLE = "user"
# The stored "hash" of a service account: no hasher recognises it, so no password matches.
NO_PASSWORD = "!"


@dataclass(frozen=True, slots=True)
class User:
    id: UUID
    username: str
    username_canonical: str
    email: str | None
    roles: frozenset[str]
    is_active: bool
    created_at: datetime
    updated_at: datetime
    # A service account has no password and cannot log in; it only holds API keys.
    is_service_account: bool = False
    email_verified: bool = False

    @property
    def is_admin(self) -> bool:
        return ADMIN_ROLE in self.roles


@dataclass(frozen=True, slots=True)
class UserCredentials:
    """A user with their stored password hash; never leaves the accounts service."""

    user: User
    password_hash: str


@dataclass(frozen=True, slots=True)
class NewUser:
    id: UUID
    username: str
    username_canonical: str
    email: str | None
    password_hash: str
    roles: frozenset[str]
    created_at: datetime
    is_service_account: bool = False
    # The comparison form of `email` (accounts.emails.canonical_email); unique.
    email_canonical: str | None = None


@dataclass(frozen=True, slots=True)
class UserChanges:
    """Fields to change on a user; None leaves a field as it is.

    A new `email` comes with its `email_canonical` (accounts.emails); storage clears
    `email_verified` when the canonical address differs from the stored one.
    """

    email: str | None = None
    clear_email: bool = False
    email_canonical: str | None = None
    roles: frozenset[str] | None = None
    is_active: bool | None = None


@dataclass(frozen=True, slots=True)
class UserPage:
    items: list[User]
    next_cursor: str | None


TokenPurpose = Literal["reset", "verify"]
RESET: Literal["reset"] = "reset"
VERIFY: Literal["verify"] = "verify"


@dataclass(frozen=True, slots=True)
class NewAccountToken:
    """A single-use link's token as stored: its digest only, never the token."""

    id: UUID
    user_id: UUID
    purpose: TokenPurpose
    digest: bytes
    # The canonical address a verification token proves (None for a reset token).
    email: str | None
    created_at: datetime
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class AccountToken:
    """A live token found by its digest, with its user."""

    id: UUID
    purpose: TokenPurpose
    email: str | None
    expires_at: datetime
    user: User
