"""Key management: create, rotate, load and cache the signing keys.

Keys live in the database so that every worker and host shares them; the private half is
encrypted at rest with Fernet under a key derived from the server secret, so a copy of the
database alone cannot mint tokens. Each process caches the key set and reloads it every
`refresh_interval`, or at once when a token names a key it has not seen (another worker
rotated), so verification costs no database round trip.
"""

from __future__ import annotations

import asyncio
import base64
import secrets
import time
from datetime import datetime, timedelta

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gatehouse.server.clock import Clock
from gatehouse.server.tokens.keyset import SIGNING_ALGORITHM, KeySet, SigningKey
from gatehouse.server.tokens.repository import SigningKeyRepository, StoredKey
from gatehouse.verifier.jwt import PublicKey

# Tokens with unknown `kid`s trigger at most one reload per this many seconds, so forged
# kids cannot turn into a flood of database reads (ten a second per process at most).
_UNKNOWN_KID_RELOAD_SECONDS = 0.1


class KeyDecryptionError(RuntimeError):
    """Stored signing keys do not decrypt: the server secret differs from the one used."""


class KeyService:
    """Owns the signing keys of this deployment and this process's cached key set."""

    def __init__(
        self,
        *,
        keys: SigningKeyRepository,
        encryption_key: bytes,
        clock: Clock,
        retire_after: timedelta,
        refresh_interval: timedelta,
    ) -> None:
        self._repo = keys
        self._fernet = Fernet(base64.urlsafe_b64encode(encryption_key))
        self._clock = clock
        self._retire_after = retire_after
        self._refresh_seconds = refresh_interval.total_seconds()
        self._keyset: KeySet | None = None
        self._loaded_at = 0.0
        self._unknown_kid_reload_at = 0.0
        self._lock = asyncio.Lock()
        self._decrypted: dict[str, SigningKey] = {}

    async def ensure_signing_key(self) -> KeySet:
        """Load the key set, generating the first signing key if there is none."""
        keyset = await self.reload()
        if keyset.signing_key is None:
            await self._repo.add(self._new_key(), retire_others_at=None)
            keyset = await self.reload()
        return keyset

    async def rotate(self) -> SigningKey:
        """Add a new signing key; the previous ones verify until their tokens expire."""
        new = self._new_key()
        await self._repo.add(new, retire_others_at=self._clock.now() + self._retire_after)
        keyset = await self.reload()
        assert keyset.signing_key is not None  # noqa: S101 - we just added one
        return keyset.signing_key

    async def list_keys(self) -> list[SigningKey]:
        """Every stored key, retired ones included, newest first."""
        stored = await self._repo.list_keys()
        return sorted((self._decrypt(k) for k in stored), key=lambda k: k.created_at, reverse=True)

    async def current(self) -> KeySet:
        """The cached key set, reloaded when older than the refresh interval."""
        keyset = self._keyset
        if keyset is None or time.monotonic() - self._loaded_at > self._refresh_seconds:
            loaded_at = self._loaded_at
            async with self._lock:
                # Requests that queued behind a reload use its result instead of repeating it.
                if self._keyset is not None and self._loaded_at != loaded_at:
                    return self._keyset
                return await self._reload_locked()
        return keyset

    async def reload_for_unknown_kid(self, kid: str) -> None:
        """Reload if `kid` is unknown and the last reload is not too recent."""
        if self._keyset is not None and self._keyset.public_key(kid) is not None:
            return
        if time.monotonic() - self._unknown_kid_reload_at >= _UNKNOWN_KID_RELOAD_SECONDS:
            self._unknown_kid_reload_at = time.monotonic()
            await self.reload()

    async def reload(self) -> KeySet:
        async with self._lock:
            return await self._reload_locked()

    async def _reload_locked(self) -> KeySet:
        stored = await self._repo.list_keys()
        keyset = KeySet([self._decrypt(k) for k in stored], self._clock.now())
        self._keyset, self._loaded_at = keyset, time.monotonic()
        return keyset

    def public_key(self, kid: str) -> PublicKey | None:
        """`KeyResolver` for the verifier: the cached key set, never a database read."""
        return self._keyset.public_key(kid) if self._keyset is not None else None

    def _new_key(self) -> StoredKey:
        private = Ed25519PrivateKey.generate()
        der = private.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        return StoredKey(
            kid=secrets.token_urlsafe(12),
            algorithm=SIGNING_ALGORITHM,
            private_key_encrypted=self._fernet.encrypt(der),
            created_at=self._clock.now(),
            retires_at=None,
        )

    def _decrypt(self, stored: StoredKey) -> SigningKey:
        cached = self._decrypted.get(stored.kid)
        if cached is not None and cached.retires_at == stored.retires_at:
            return cached
        try:
            der = self._fernet.decrypt(stored.private_key_encrypted)
        except InvalidToken as exc:
            raise KeyDecryptionError(
                "The stored signing keys do not decrypt with this server secret. Every "
                "host must use the GATEHOUSE_SECRET_KEY (or secret.key file) the database "
                "was set up with."
            ) from exc
        private = serialization.load_der_private_key(der, password=None)
        if not isinstance(private, Ed25519PrivateKey):
            raise KeyDecryptionError(f"Key {stored.kid} is not an Ed25519 key.")
        key = SigningKey(
            kid=stored.kid,
            algorithm=stored.algorithm,
            private_key=private,
            created_at=stored.created_at,
            retires_at=stored.retires_at,
        )
        self._decrypted[stored.kid] = key
        return key


def retire_after(
    access_token_ttl: timedelta, leeway: timedelta, key_refresh_interval: timedelta
) -> timedelta:
    """How long an outgoing key keeps verifying: until its last token has expired.

    A process that has not reloaded its keys yet still signs with the outgoing key for up
    to one refresh interval after the rotation, so that interval counts too.
    """
    return key_refresh_interval + access_token_ttl + leeway


def is_retired(key: SigningKey, now: datetime) -> bool:
    return key.retires_at is not None and key.retires_at <= now
