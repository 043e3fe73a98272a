"""Account records as the services see them: plain frozen dataclasses."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
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


@dataclass(frozen=True, slots=True)
class UserChanges:
    """Fields to change on a user; None leaves a field as it is."""

    email: str | None = None
    clear_email: bool = False
    roles: frozenset[str] | None = None
    is_active: bool | None = None


@dataclass(frozen=True, slots=True)
class UserPage:
    items: list[User]
    next_cursor: str | None
