"""`IntrospectionVerifier`: ask Gatehouse (RFC 7662) whether a token is active right now.

For services that must see a revocation at once: every token not answered from the short
positive cache is POSTed to `/oauth/introspect` with an API key holding the `introspect`
scope (sent as `X-API-Key`, one of the ways the endpoint accepts). Positive answers are
cached for `cache_ttl` seconds and never past the token's `exp`; negative answers are never
cached, so a token that was refused once is asked about again. Only a digest of each token is
kept in memory.

Failure to get an answer (network, 5xx, our key refused) is `VerifierUnavailableError`,
never an acceptance: nothing vouches for the token.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any

import httpx

from gatehouse.verifier.errors import (
    InactiveTokenError,
    InvalidClaimsError,
    MalformedTokenError,
    VerifierUnavailableError,
)
from gatehouse.verifier.jwt import DEVICE_KIND, MAX_TOKEN_BYTES, USER_KIND, AccessTokenClaims


def claims_from_introspection(answer: dict[str, Any]) -> AccessTokenClaims:
    """`AccessTokenClaims` from an active RFC 7662 answer of Gatehouse.

    `scope` is the caller's standing now (a user's roles, a key's scopes): it fills both
    `roles` and `scopes`, so role and scope checks see the live authority.

    Raises:
        InvalidClaimsError: a required member is missing or of the wrong type.
    """
    sub, exp, iat = answer.get("sub"), answer.get("exp"), answer.get("iat")
    iss, jti, scope = answer.get("iss"), answer.get("jti", ""), answer.get("scope", "")
    kind = answer.get("kind", USER_KIND)
    if not isinstance(sub, str) or not isinstance(iss, str) or not isinstance(jti, str):
        raise InvalidClaimsError("introspection answer lacks sub, iss or jti")
    if not isinstance(exp, int) or not isinstance(iat, int) or _is_bool(exp, iat):
        raise InvalidClaimsError("introspection answer lacks exp or iat")
    if not isinstance(scope, str) or kind not in (USER_KIND, DEVICE_KIND):
        raise InvalidClaimsError("introspection answer has a bad scope or kind")
    aud = answer.get("aud", ())
    audience = (aud,) if isinstance(aud, str) else tuple(a for a in aud if isinstance(a, str))
    sid, client_id = answer.get("sid"), answer.get("client_id")
    scopes = frozenset(scope.split())
    return AccessTokenClaims(
        subject=sub,
        issuer=iss,
        audience=audience,
        expires_at=exp,
        issued_at=iat,
        token_id=jti,
        session_id=sid if isinstance(sid, str) else None,
        roles=scopes,
        key_id="",
        raw=answer,
        kind=kind,
        scopes=scopes,
        client_id=client_id if isinstance(client_id, str) else None,
    )


def _is_bool(*values: object) -> bool:
    return any(isinstance(value, bool) for value in values)


class IntrospectionVerifier:
    """Verifies tokens by asking Gatehouse, with a short positive cache.

    verifier = IntrospectionVerifier(
        "https://auth.example.com/oauth/introspect", api_key="ghk_..."
    )
    claims = verifier.verify(token)          # sync (blocks on the POST)
    claims = await verifier.averify(token)   # on an event loop
    """

    def __init__(
        self,
        introspection_url: str,
        *,
        api_key: str,
        cache_ttl: float = 5.0,
        audience: str | None = None,
        http_client: httpx.Client | None = None,
        async_http_client: httpx.AsyncClient | None = None,
        timeout: float = 5.0,
        clock: Callable[[], float] = time.time,
        max_cached: int = 10_000,
    ) -> None:
        """Args:
        introspection_url: Gatehouse's `/oauth/introspect`, used as is.
        api_key: a whole API key with the `introspect` scope (or an admin's).
        cache_ttl: seconds a positive answer is reused (never past the token's `exp`);
            0 asks on every call.
        audience: when given, an `aud` the token must carry.
        http_client, async_http_client: clients for the calls (yours stay open).
        timeout: seconds per call when the verifier makes its own client.
        clock: "now" as a Unix timestamp.
        max_cached: positive answers remembered at most (the cache is emptied when full).
        """
        self._url = introspection_url
        self._headers = {"X-API-Key": api_key, "Accept": "application/json"}
        self._ttl = cache_ttl
        self._audience = audience
        self._client = http_client
        self._owns_client = http_client is None
        self._async_client = async_http_client
        self._owns_async_client = async_http_client is None
        self._timeout = timeout
        self._clock = clock
        self._max_cached = max_cached
        self._cache: dict[bytes, tuple[float, AccessTokenClaims]] = {}
        self._lock = threading.Lock()

    def verify(self, token: str) -> AccessTokenClaims:
        """Ask (or remember) whether `token` is active and return its claims.

        Raises:
            InactiveTokenError: Gatehouse says the token is not active.
            VerifierUnavailableError: no answer could be had.
            InvalidTokenError: another reason to refuse (oversized, wrong audience).
        """
        digest = self._digest(token)
        cached = self._cached(digest)
        if cached is not None:
            return cached
        if self._client is None:
            self._client = httpx.Client(timeout=self._timeout)
        try:
            response = self._client.post(self._url, data={"token": token}, headers=self._headers)
        except httpx.HTTPError as exc:
            raise VerifierUnavailableError(f"introspection failed: {type(exc).__name__}") from exc
        return self._answered(digest, response)

    async def averify(self, token: str) -> AccessTokenClaims:
        """`verify` for event loops: the POST is awaited.

        Raises:
            InactiveTokenError, VerifierUnavailableError, InvalidTokenError: as `verify`.
        """
        digest = self._digest(token)
        cached = self._cached(digest)
        if cached is not None:
            return cached
        if self._async_client is None:
            self._async_client = httpx.AsyncClient(timeout=self._timeout)
        try:
            response = await self._async_client.post(
                self._url, data={"token": token}, headers=self._headers
            )
        except httpx.HTTPError as exc:
            raise VerifierUnavailableError(f"introspection failed: {type(exc).__name__}") from exc
        return self._answered(digest, response)

    @staticmethod
    def _digest(token: str) -> bytes:
        if len(token) > MAX_TOKEN_BYTES:
            raise MalformedTokenError("token is not a string of at most 8 KiB")
        return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()

    def _cached(self, digest: bytes) -> AccessTokenClaims | None:
        entry = self._cache.get(digest)
        if entry is None:
            return None
        until, claims = entry
        if self._clock() < until:
            return claims
        with self._lock:
            self._cache.pop(digest, None)
        return None

    def _answered(self, digest: bytes, response: httpx.Response) -> AccessTokenClaims:
        if response.status_code != 200:
            # 401/403: our key is wrong or lacks `introspect`; 5xx: Gatehouse is in trouble.
            raise VerifierUnavailableError(f"introspection answered {response.status_code}")
        try:
            answer = response.json()
        except ValueError as exc:
            raise VerifierUnavailableError("introspection answer is not JSON") from exc
        if not isinstance(answer, dict):
            raise VerifierUnavailableError("introspection answer is not an object")
        if answer.get("active") is not True:
            raise InactiveTokenError("token is not active")
        claims = claims_from_introspection(answer)
        if self._audience is not None and self._audience not in claims.audience:
            raise InvalidClaimsError("token is not meant for this audience")
        now = self._clock()
        # Never remembered past `exp`: an expired token is asked about (and refused) again.
        until = min(now + self._ttl, float(claims.expires_at))
        if until > now:
            with self._lock:
                if len(self._cache) >= self._max_cached:
                    self._cache.clear()
                self._cache[digest] = (until, claims)
        return claims

    def close(self) -> None:
        """Close the HTTP client the verifier made for itself (not one passed in)."""
        if self._owns_client and self._client is not None:
            self._client.close()
            self._client = None

    async def aclose(self) -> None:
        """Close both HTTP clients the verifier made for itself."""
        self.close()
        if self._owns_async_client and self._async_client is not None:
            await self._async_client.aclose()
            self._async_client = None

    def __enter__(self) -> IntrospectionVerifier:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


__all__ = ["IntrospectionVerifier", "claims_from_introspection"]
