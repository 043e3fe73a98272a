"""API key records as the services see them: plain frozen dataclasses."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from gatehouse.server.accounts.models import ADMIN_ROLE, User

API_KEY_PREFIX = "ghk"
# Not a role: lets a key call POST /oauth/introspect. Only an admin may put it on a key.
INTROSPECT_SCOPE = "introspect"


@dataclass(frozen=True, slots=True)
class ApiKey:
    """A key's record. It never holds the secret; storage keeps only its digest."""

    id: UUID
    public_id: str
    owner_id: UUID
    name: str
    scopes: frozenset[str]
    created_at: datetime
    last_used_at: datetime | None
    expires_at: datetime | None
    revoked_at: datetime | None = None

    @property
    def prefix(self) -> str:
        return API_KEY_PREFIX

    @property
    def client_id(self) -> str:
        """`<prefix>_<id>`: the key's OAuth client id, and the start of the key itself."""
        return f"{API_KEY_PREFIX}_{self.public_id}"

    def is_live(self, now: datetime) -> bool:
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > now)

    def effective_scopes(self, owner: User) -> frozenset[str]:
        """What the key may do now: its roles that the owner still has, and `introspect`.

        Taking the owner's roles away narrows every key of theirs at once.
        """
        return (self.scopes & owner.roles) | (self.scopes & {INTROSPECT_SCOPE})

    def admin_scope(self, owner: User) -> bool:
        return ADMIN_ROLE in self.effective_scopes(owner)


@dataclass(frozen=True, slots=True)
class IssuedApiKey:
    """A key just created: its record and the full key, shown to its holder this once."""

    record: ApiKey
    key: str


@dataclass(frozen=True, slots=True)
class ApiKeyLookup:
    """A key found by its public id, with its digest and its owner, for authentication."""

    record: ApiKey
    digest: bytes
    owner: User


@dataclass(frozen=True, slots=True)
class ClientToken:
    """The answer of the client-credentials grant: an access token and nothing to refresh."""

    access_token: str
    expires_in: int
    scope: str
    token_type: str = "bearer"


@dataclass(frozen=True, slots=True)
class ApiKeyPage:
    items: list[ApiKey]
    next_cursor: str | None
