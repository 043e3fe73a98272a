"""What the API key service needs from storage. `server/storage` implements it."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol
from uuid import UUID

from gatehouse.server.apikeys.models import ApiKey, ApiKeyLookup


class ApiKeyRepository(Protocol):
    async def add(self, key: ApiKey, digest: bytes) -> None: ...

    async def find_by_public_id(self, public_id: str) -> ApiKeyLookup | None:
        """The key with this public id, its digest and its owner (with roles), revoked or
        not; None if there is none."""
        ...

    async def get(self, key_id: UUID, *, owner_id: UUID) -> ApiKey | None:
        """The unrevoked key with this id belonging to `owner_id`, or None."""
        ...

    async def list(
        self, *, owner_id: UUID | None, limit: int, after: tuple[datetime, UUID] | None
    ) -> list[ApiKey]:
        """Unrevoked keys (expired ones included), oldest first, of one owner or all;
        only those after `after` (created_at, id)."""
        ...

    async def revoke(self, key_id: UUID, *, owner_id: UUID | None, now: datetime) -> bool:
        """Revoke an unrevoked key (of `owner_id`, when given). False if none matched.
        Records an invalidation for the owner, so every process forgets the key."""
        ...

    async def touch(self, key_id: UUID, *, now: datetime, not_since: datetime) -> None:
        """Set last_used_at to `now` unless it is already at or after `not_since`."""
        ...
