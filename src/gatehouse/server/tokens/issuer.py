"""Issuing access tokens: RFC 9068-shaped JWTs signed by the key set's signing key."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterable
from datetime import timedelta
from uuid import UUID

import jwt

from gatehouse.server.clock import Clock
from gatehouse.server.tokens.service import KeyService
from gatehouse.verifier.jwt import ACCESS_TOKEN_TYPE, USER_KIND


class AccessTokenIssuer:
    """Signs access tokens; what it signs, `gatehouse.verifier` accepts."""

    def __init__(
        self, *, keys: KeyService, issuer: str, audience: str, ttl: timedelta, clock: Clock
    ) -> None:
        self._keys = keys
        self._issuer = issuer
        self._audience = audience
        self._ttl_seconds = int(ttl.total_seconds())
        self._clock = clock

    @property
    def issuer(self) -> str:
        return self._issuer

    @property
    def ttl_seconds(self) -> int:
        return self._ttl_seconds

    async def issue(
        self,
        *,
        subject: UUID,
        session_id: UUID | None,
        roles: Iterable[str],
        client_id: str | None = None,
        scope: Iterable[str] | None = None,
        kind: str = USER_KIND,
    ) -> str:
        """Sign an access token for a session (`session_id`), a client (`client_id`) or a
        device (`kind="device"`, `subject` the device id, no roles).

        A client-credentials token has `client_id` and `scope` (space-separated, RFC 8693
        s4.2) and no `sid`. Every token says what its subject is in `kind`, so no resource
        server mistakes a device for a user.
        """
        now = int(self._clock.now().timestamp())
        claims: dict[str, object] = {
            "iss": self._issuer,
            "sub": str(subject),
            "aud": self._audience,
            "exp": now + self._ttl_seconds,
            "iat": now,
            "nbf": now,
            "jti": secrets.token_urlsafe(16),
            "kind": kind,
            "roles": sorted(roles),
        }
        if session_id is not None:
            claims["sid"] = str(session_id)
        if client_id is not None:
            claims["client_id"] = client_id
            claims["scope"] = " ".join(sorted(scope or ()))
        return await self.sign(claims, typ=ACCESS_TOKEN_TYPE)

    async def sign(self, claims: dict[str, object], *, typ: str) -> str:
        """A compact JWS of `claims` under the current signing key, with `kid` and `typ`
        (access tokens, and the offline license files of devices)."""
        keyset = await self._keys.current()
        signing_key = keyset.signing_key
        if signing_key is None:
            keyset = await self._keys.ensure_signing_key()
            signing_key = keyset.signing_key
            assert signing_key is not None  # noqa: S101 - ensure_signing_key made one
        # PyJWS over our own JSON: the claims are ours and JSON already, so PyJWT's claim
        # conversion (datetimes, a copy of the dict) is skipped.
        return jwt.api_jws.encode(
            json.dumps(claims, separators=(",", ":")).encode(),
            signing_key.private_key,
            algorithm=signing_key.algorithm,
            headers={"kid": signing_key.kid, "typ": typ},
        )
