"""Session records and the values the session service hands out."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from gatehouse.server.accounts.models import User
from gatehouse.verifier import AccessTokenClaims


@dataclass(frozen=True, slots=True)
class ClientInfo:
    """Where a login came from, as the HTTP layer saw it."""

    device_name: str | None = None
    ip_address: str | None = None
    user_agent: str | None = None


@dataclass(frozen=True, slots=True)
class Session:
    id: UUID
    user_id: UUID
    device_name: str | None
    ip_address: str | None
    user_agent: str | None
    created_at: datetime
    last_used_at: datetime
    expires_at: datetime
    refresh_expires_at: datetime
    revoked_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class RefreshLookup:
    """A session found by a refresh-token digest; `current` is False for a rotated token."""

    session: Session
    user: User
    current: bool


@dataclass(frozen=True, slots=True)
class TokenPair:
    access_token: str
    expires_in: int
    refresh_token: str
    session_id: UUID
    token_type: str = "bearer"


@dataclass(frozen=True, slots=True)
class Principal:
    """The caller of a protected route: a live session of an active user."""

    user: User
    session_id: UUID
    claims: AccessTokenClaims
