"""Issuing access tokens: RFC 9068-shaped JWTs signed by the key set's signing key."""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from datetime import timedelta
from uuid import UUID

import jwt

from gatehouse.server.clock import Clock
from gatehouse.server.tokens.service import KeyService
from gatehouse.verifier import ACCESS_TOKEN_TYPE


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
    def ttl_seconds(self) -> int:
        return self._ttl_seconds

    async def issue(self, *, subject: UUID, session_id: UUID, roles: Iterable[str]) -> str:
        keyset = await self._keys.current()
        signing_key = keyset.signing_key
        if signing_key is None:
            keyset = await self._keys.ensure_signing_key()
            signing_key = keyset.signing_key
            assert signing_key is not None  # noqa: S101 - ensure_signing_key made one
        now = int(self._clock.now().timestamp())
        claims = {
            "iss": self._issuer,
            "sub": str(subject),
            "aud": self._audience,
            "exp": now + self._ttl_seconds,
            "iat": now,
            "nbf": now,
            "jti": secrets.token_urlsafe(16),
            "sid": str(session_id),
            "roles": sorted(roles),
        }
        return jwt.encode(
            claims,
            signing_key.private_key,
            algorithm=signing_key.algorithm,
            headers={"kid": signing_key.kid, "typ": ACCESS_TOKEN_TYPE},
        )
