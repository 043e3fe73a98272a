"""What the client tests share: a server's signing key and the claims it issues."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from jwt.algorithms import OKPAlgorithm

FINGERPRINT = "5f" * 32
OTHER_FINGERPRINT = "a0" * 32
DEVICE_ID = "0b6a4c1e-27d4-4f4e-9c2b-6d1f0e7a9c33"
LICENSE_ID = "9d2f7c59-3a5e-4d8c-8f7e-2b1c0a9e8d7f"
NOW = 1_900_000_000


@dataclass
class Signer:
    """A server's signing key as the tests need it: JWKS entry and license files."""

    kid: str = "key-1"
    key: Ed25519PrivateKey = field(default_factory=Ed25519PrivateKey.generate)

    def jwk(self) -> dict[str, Any]:
        public = OKPAlgorithm.to_jwk(self.key.public_key(), as_dict=True)
        return {**public, "kid": self.kid, "alg": "EdDSA", "use": "sig"}

    def jwks(self) -> dict[str, Any]:
        return {"keys": [self.jwk()]}

    def sign(self, claims: dict[str, Any], **header: Any) -> str:
        """A license file of `claims`; `header` overrides (a None `kid` leaves it out)."""
        headers = {"kid": self.kid, "typ": "gatehouse-license+jwt", **header}
        if headers["kid"] is None:
            del headers["kid"]
        # PyJWS signs the JSON as given: PyJWT's encode would refuse some ill-typed claims.
        body = json.dumps(claims).encode()
        return jwt.api_jws.encode(body, self.key, algorithm="EdDSA", headers=headers)


def license_claims(fingerprint: str = FINGERPRINT, **overrides: Any) -> dict[str, Any]:
    """The claims of a license file as the server issues it, valid around NOW."""
    claims: dict[str, Any] = {
        "iss": "https://auth.example.com",
        "sub": DEVICE_ID,
        "fingerprint": fingerprint,
        "device_id": DEVICE_ID,
        "license_id": LICENSE_ID,
        "product": "pro",
        "features": ["export", "sync"],
        "iat": NOW - 60,
        "exp": NOW + 7 * 86400,
    }
    claims.update(overrides)
    return claims
