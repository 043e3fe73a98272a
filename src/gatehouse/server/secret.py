"""The server secret, and the keys derived from it for each purpose.

One secret feeds HKDF, which derives an independent key per purpose (the pepper of
refresh-token digests, the key that encrypts signing keys at rest), so no two uses share
key material. The secret comes from `GATEHOUSE_SECRET_KEY`, or is generated once into
`DATA_DIR/secret.key` with mode 0600. Every host of one deployment must use the same one.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

SECRET_FILE_NAME = "secret.key"


class ServerSecret:
    """Holds the server secret and derives purpose-bound keys from it."""

    def __init__(self, secret: bytes) -> None:
        if len(secret) < 32:
            raise ValueError("the server secret must be at least 32 bytes")
        self._secret = secret

    def derive(self, purpose: str, length: int = 32) -> bytes:
        """Derive a key for one purpose (RFC 5869 HKDF-SHA256, purpose as `info`)."""
        hkdf = HKDF(algorithm=hashes.SHA256(), length=length, salt=None, info=purpose.encode())
        return hkdf.derive(self._secret)

    @classmethod
    def load_or_create(cls, path: Path) -> ServerSecret:
        """Read the secret file, creating it (0600, in a 0700 folder) if it is missing."""
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return cls(path.read_bytes().strip())
        with os.fdopen(fd, "wb") as handle:
            handle.write(secrets.token_urlsafe(48).encode())
        return cls(path.read_bytes().strip())


class OpaqueTokens:
    """Opaque secrets (refresh tokens, later API keys): generated here, stored as digests.

    Storage keeps only HMAC-SHA256(pepper, token), so a copy of the database yields no usable
    token. Lookups go by digest through a unique index; an attacker cannot choose a digest, so
    the index comparison leaks nothing useful about a stored value.
    """

    def __init__(self, pepper: bytes) -> None:
        self._pepper = pepper

    def new(self, prefix: str) -> tuple[str, bytes]:
        """Return a fresh token with 256 bits of entropy and its digest."""
        token = prefix + secrets.token_urlsafe(32)
        return token, self.digest(token)

    def digest(self, token: str) -> bytes:
        return hmac.new(
            self._pepper, token.encode("utf-8", "surrogatepass"), hashlib.sha256
        ).digest()
