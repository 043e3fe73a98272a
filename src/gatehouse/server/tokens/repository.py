"""What the key service needs from storage. `server/storage` implements it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol


@dataclass(frozen=True, slots=True)
class StoredKey:
    """A signing key as stored: the private half encrypted under the server secret."""

    kid: str
    algorithm: str
    private_key_encrypted: bytes
    created_at: datetime
    retires_at: datetime | None


class SigningKeyRepository(Protocol):
    async def list_keys(self) -> list[StoredKey]: ...

    async def add(self, key: StoredKey, *, retire_others_at: datetime | None) -> None:
        """Insert a key; with `retire_others_at`, stamp every other signing key to retire."""
        ...
