"""Session records and the values the session service hands out."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from gatehouse.server.accounts.models import ADMIN_ROLE, User
from gatehouse.server.apikeys.models import ApiKey
from gatehouse.verifier.jwt import AccessTokenClaims


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
class CookieLogin:
    """A browser session just opened: its record, the cookie's value and the CSRF token."""

    session: Session
    cookie: str
    csrf_token: str


@dataclass(frozen=True, slots=True)
class Principal:
    """The caller of a protected route, an active user, by one of three credentials:

    - a session's access token: `session_id` and `claims` set, `roles` the user's;
    - an API key: `api_key` set, `roles` the key's effective scopes;
    - a client-credentials access token: `api_key` and `claims` set, `roles` the token's
      roles that the key still allows.
    """

    user: User
    session_id: UUID | None
    claims: AccessTokenClaims | None
    roles: frozenset[str]
    api_key: ApiKey | None = None

    @property
    def is_admin(self) -> bool:
        return ADMIN_ROLE in self.roles

    @property
    def client_id(self) -> str | None:
        return self.api_key.client_id if self.api_key is not None else None
