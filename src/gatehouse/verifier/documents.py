"""JWKS documents: reading one (bounded in size) and the usable signing keys in it."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePublicKey
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

from gatehouse.verifier.jwt import PublicKey


class JwksError(Exception):
    """The JWKS or discovery document could not be had or understood (kept inside the cache:
    verification turns it into a warning and, for an uncached `kid`, `UnknownKeyError`)."""


# A JWKS of a few keys is a few KiB; past this, the document is refused as it streams in.
MAX_DOCUMENT_BYTES = 256 * 1024


class BoundedDocument:
    """A fetched document, refused once it grows past MAX_DOCUMENT_BYTES. (httpx does not
    follow redirects unless told to, so only the configured URL is ever read.)"""

    def __init__(self, url: str) -> None:
        self._url = url
        self._parts: list[bytes] = []
        self._size = 0

    def add(self, chunk: bytes) -> None:
        self._size += len(chunk)
        if self._size > MAX_DOCUMENT_BYTES:
            raise JwksError(f"GET {self._url}: the document exceeds {MAX_DOCUMENT_BYTES} bytes")
        self._parts.append(chunk)

    def json(self) -> Any:
        return json.loads(b"".join(self._parts))


def parse_jwks(document: object, algorithms: Sequence[str]) -> dict[str, PublicKey]:
    """The usable public signing keys of a JWKS document, by `kid`.

    Keys without a `kid`, for another use than `sig`, for an algorithm off the allow-list, of
    an unsupported type, or carrying private material are skipped.

    Raises:
        JwksError: the document is not a JSON object with a `keys` list.
    """
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise JwksError("the JWKS is not an object with a 'keys' list")
    found: dict[str, PublicKey] = {}
    for entry in document["keys"]:
        if not isinstance(entry, dict):
            continue
        kid, alg, use = entry.get("kid"), entry.get("alg"), entry.get("use", "sig")
        if not isinstance(kid, str) or not kid or use != "sig":
            continue
        if alg is not None and alg not in algorithms:
            continue
        try:
            key = jwt.PyJWK(entry).key
        except (jwt.PyJWTError, ValueError, TypeError):
            continue
        if isinstance(key, Ed25519PublicKey | EllipticCurvePublicKey | RSAPublicKey):
            found[kid] = key
    return found
