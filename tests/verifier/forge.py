"""Tokens built by hand for the verifier tests: any header, any claims, any signature."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from jwt.algorithms import OKPAlgorithm

ISSUER = "https://auth.example.com"
AUDIENCE = "my-api"
NOW = 1_800_000_000.0
KID = "k1"
KEY = Ed25519PrivateKey.generate()


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def public_jwk(key: Ed25519PrivateKey = KEY, kid: str = KID) -> dict[str, Any]:
    jwk: dict[str, Any] = json.loads(OKPAlgorithm.to_jwk(key.public_key()))
    jwk.update({"kid": kid, "alg": "EdDSA", "use": "sig"})
    return jwk


def jwks(*entries: dict[str, Any]) -> dict[str, Any]:
    return {"keys": list(entries) or [public_jwk()]}


def claims(**changes: Any) -> dict[str, Any]:
    """Gatehouse-shaped claims valid at NOW; a change to None removes the claim."""
    base: dict[str, Any] = {
        "iss": ISSUER,
        "sub": "user-1",
        "aud": AUDIENCE,
        "exp": int(NOW) + 600,
        "iat": int(NOW),
        "nbf": int(NOW),
        "jti": "j1",
        "sid": "s1",
        "kind": "user",
        "roles": ["user"],
    }
    base.update(changes)
    return {k: v for k, v in base.items() if v is not None}


def header(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"alg": "EdDSA", "kid": KID, "typ": "at+jwt"}
    base.update(changes)
    return {k: v for k, v in base.items() if v is not None}


def signing_input(head: dict[str, Any], body: dict[str, Any] | bytes) -> str:
    payload = body if isinstance(body, bytes) else json.dumps(body).encode()
    return b64(json.dumps(head).encode()) + "." + b64(payload)


def eddsa(
    head: dict[str, Any] | None = None,
    body: dict[str, Any] | bytes | None = None,
    key: Ed25519PrivateKey = KEY,
) -> str:
    """A compact JWS signed with Ed25519 (by default a valid Gatehouse access token)."""
    signed = signing_input(header() if head is None else head, claims() if body is None else body)
    return signed + "." + b64(key.sign(signed.encode()))


def hs256(secret: bytes, head: dict[str, Any] | None = None) -> str:
    """An HS256 JWS whose HMAC key is `secret` (the key-confusion attack)."""
    signed = signing_input(header(alg="HS256") if head is None else head, claims())
    return signed + "." + b64(hmac.new(secret, signed.encode(), hashlib.sha256).digest())


def unsigned(alg: str) -> str:
    """An `alg: none`-style token with an empty signature."""
    return signing_input(header(alg=alg), claims()) + "."
