"""Signing keys and the key set: the newest key signs, every unretired key verifies.

A key retires once every token it signed has expired: rotation stamps the outgoing key with
`retires_at = now + access-token TTL + leeway`, after which it leaves the key set and JWKS.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from jwt.algorithms import OKPAlgorithm

from gatehouse.verifier.jwt import PublicKey

SIGNING_ALGORITHM = "EdDSA"


@dataclass(frozen=True, slots=True)
class SigningKey:
    kid: str
    algorithm: str
    private_key: Ed25519PrivateKey
    created_at: datetime
    retires_at: datetime | None

    @property
    def public_key(self) -> Ed25519PublicKey:
        return self.private_key.public_key()

    def public_jwk(self) -> dict[str, Any]:
        """The public half as a JWK (RFC 8037 OKP), with `kid`, `alg` and `use`."""
        jwk: dict[str, Any] = json.loads(OKPAlgorithm.to_jwk(self.public_key))
        jwk.update({"kid": self.kid, "alg": self.algorithm, "use": "sig"})
        return jwk


class KeySet:
    """An immutable snapshot of the usable keys at one moment."""

    def __init__(self, keys: list[SigningKey], now: datetime) -> None:
        usable = [k for k in keys if k.retires_at is None or k.retires_at > now]
        signers = [k for k in usable if k.retires_at is None]
        self.keys = sorted(usable, key=lambda k: k.created_at, reverse=True)
        self.signing_key: SigningKey | None = (
            max(signers, key=lambda k: k.created_at) if signers else None
        )
        self._public = {k.kid: k.public_key for k in self.keys}

    def public_key(self, kid: str) -> PublicKey | None:
        return self._public.get(kid)

    def jwks(self) -> dict[str, Any]:
        return {"keys": [k.public_jwk() for k in self.keys]}
