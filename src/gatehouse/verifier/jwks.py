"""`TokenVerifier`: access tokens checked against the issuer's published JWKS.

This module owns the key cache of a resource server: where the JWKS lives (discovery, or a
URL given as is), how long its keys are trusted (`jwks_ttl`), when an unknown `kid` may
cause a refetch (at most once per `unknown_kid_cooldown`, so garbage `kid`s cannot make us
hammer Gatehouse), and what happens when Gatehouse is unreachable (cached keys keep
verifying, an uncached `kid` is `UnknownKeyError`, a warning is logged). Every check of the
token itself is `AccessTokenVerifier`'s: there is one definition of a valid token.

It must not fetch anything a token names: keys come only from the configured JWKS URL.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Any

import httpx

from gatehouse.verifier.documents import BoundedDocument, JwksError, parse_jwks
from gatehouse.verifier.errors import UnknownKeyError
from gatehouse.verifier.jwt import (
    DEFAULT_ALGORITHMS,
    AccessTokenClaims,
    AccessTokenVerifier,
    PublicKey,
    unverified_key_id,
)

logger = logging.getLogger("gatehouse.verifier")

DISCOVERY_PATH = "/.well-known/openid-configuration"


def _elapsed_below(now: float, since: float | None, seconds: float) -> bool:
    # A clock that stepped back counts as "long ago": a fetch is allowed rather than stalled.
    return since is not None and 0 <= now - since < seconds


class JwksCache:
    """A `KeyResolver` over a JWKS URL: keys cached for `ttl` seconds, refetched for an
    unknown `kid` at most once per `cooldown` seconds, and kept when a fetch fails.

    `public_key` may fetch synchronously (with `http_client`); the async side is `arefresh`,
    called by `TokenVerifier.averify`, after which `cached_key` answers without I/O.
    """

    def __init__(
        self,
        *,
        issuer: str,
        jwks_url: str | None,
        algorithms: Sequence[str],
        ttl: float,
        cooldown: float,
        http_client: httpx.Client | None,
        async_http_client: httpx.AsyncClient | None,
        timeout: float,
        clock: Callable[[], float],
    ) -> None:
        self._issuer = issuer.rstrip("/")
        self._issuer_exact = issuer
        self._jwks_url = jwks_url
        self._algorithms = tuple(algorithms)
        self._ttl = ttl
        self._cooldown = cooldown
        self._timeout = timeout
        self._clock = clock
        self._client = http_client
        self._owns_client = http_client is None
        self._async_client = async_http_client
        self._owns_async_client = async_http_client is None
        self._keys: dict[str, PublicKey] = {}
        self._fetched_at: float | None = None  # last successful fetch
        self._failed_at: float | None = None  # last failed fetch
        self._unknown_at: float | None = None  # last fetch made for an unknown kid
        self._lock = threading.Lock()
        self._async_lock = asyncio.Lock()

    @property
    def jwks_url(self) -> str | None:
        """The JWKS URL: the one given, else the one discovery found (None before that)."""
        return self._jwks_url

    def cached_key(self, kid: str) -> PublicKey | None:
        return self._keys.get(kid)

    def due(self, kid: str | None) -> bool:
        """Whether a fetch is due now: never fetched, past the TTL, or (for `kid`) an unknown
        key whose cooldown has passed; never within `cooldown` of a failed fetch."""
        now = self._clock()
        if _elapsed_below(now, self._failed_at, self._cooldown):
            return False
        if not _elapsed_below(now, self._fetched_at, self._ttl):
            return True
        if kid is not None and kid not in self._keys:
            return not _elapsed_below(now, self._unknown_at, self._cooldown)
        return False

    # -- sync ---------------------------------------------------------------------------

    def public_key(self, kid: str) -> PublicKey | None:
        """`KeyResolver`: the key for `kid`, fetching the JWKS first when one is due."""
        key = self._keys.get(kid)
        if key is not None and _elapsed_below(self._clock(), self._fetched_at, self._ttl):
            return key
        if self.due(kid):
            with self._lock:
                # Threads that queued behind a fetch use its result instead of repeating it.
                if self.due(kid):
                    self._record(kid, self._fetch_sync)
        return self._keys.get(kid)

    def _fetch_sync(self) -> dict[str, PublicKey]:
        client = self._sync_client()
        url = self._jwks_url or self._discovered(self._get_json(client, self._discovery_url()))
        keys = parse_jwks(self._get_json(client, url), self._algorithms)
        self._jwks_url = url
        return keys

    def _get_json(self, client: httpx.Client, url: str) -> Any:
        try:
            with client.stream(
                "GET", url, timeout=self._timeout, follow_redirects=False
            ) as response:
                response.raise_for_status()
                body = BoundedDocument(url)
                for chunk in response.iter_bytes():
                    body.add(chunk)
            return body.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise JwksError(f"GET {url}: {type(exc).__name__}: {exc}") from exc

    def _sync_client(self) -> httpx.Client:
        if self._client is None:
            self._client = httpx.Client(timeout=self._timeout)
        return self._client

    # -- async --------------------------------------------------------------------------

    async def arefresh(self, kid: str | None) -> None:
        """Fetch the JWKS without blocking the event loop, if a fetch is due for `kid`."""
        if not self.due(kid):
            return
        async with self._async_lock:
            if not self.due(kid):
                return
            now = self._clock()
            try:
                keys = await self._fetch_async()
            except JwksError as exc:
                self._failed(now, exc)
            else:
                self._installed(now, kid, keys)

    async def _fetch_async(self) -> dict[str, PublicKey]:
        client = self._async_client_or_new()
        url = self._jwks_url or self._discovered(
            await self._aget_json(client, self._discovery_url())
        )
        keys = parse_jwks(await self._aget_json(client, url), self._algorithms)
        self._jwks_url = url
        return keys

    async def _aget_json(self, client: httpx.AsyncClient, url: str) -> Any:
        try:
            async with client.stream(
                "GET", url, timeout=self._timeout, follow_redirects=False
            ) as response:
                response.raise_for_status()
                body = BoundedDocument(url)
                async for chunk in response.aiter_bytes():
                    body.add(chunk)
            return body.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise JwksError(f"GET {url}: {type(exc).__name__}: {exc}") from exc

    def _async_client_or_new(self) -> httpx.AsyncClient:
        if self._async_client is None:
            self._async_client = httpx.AsyncClient(timeout=self._timeout)
        return self._async_client

    # -- shared -------------------------------------------------------------------------

    def _discovery_url(self) -> str:
        return self._issuer + DISCOVERY_PATH

    def _discovered(self, document: Any) -> str:
        # RFC 8414 s3.3: the metadata's issuer must be the one we asked for, exactly.
        if not isinstance(document, dict) or document.get("issuer") != self._issuer_exact:
            raise JwksError("the discovery document names another issuer")
        url = document.get("jwks_uri")
        if not isinstance(url, str) or not url:
            raise JwksError("the discovery document has no jwks_uri")
        return url

    def _record(self, kid: str | None, fetch: Callable[[], dict[str, PublicKey]]) -> None:
        now = self._clock()
        try:
            keys = fetch()
        except JwksError as exc:
            self._failed(now, exc)
        else:
            self._installed(now, kid, keys)

    def _installed(self, now: float, kid: str | None, keys: dict[str, PublicKey]) -> None:
        if kid is not None and kid not in self._keys and self._fetched_at is not None:
            self._unknown_at = now
        # One assignment: readers in other threads see the old map or the new one, whole.
        self._keys = keys
        self._fetched_at = now
        self._failed_at = None

    def _failed(self, now: float, exc: JwksError) -> None:
        self._failed_at = now
        logger.warning(
            "gatehouse.verifier: could not fetch the JWKS (%s); verifying with %d cached key(s)"
            ", next attempt in %.0f s at the earliest",
            exc,
            len(self._keys),
            self._cooldown,
        )

    def close(self) -> None:
        if self._owns_client and self._client is not None:
            self._client.close()
            self._client = None

    async def aclose(self) -> None:
        self.close()
        if self._owns_async_client and self._async_client is not None:
            await self._async_client.aclose()
            self._async_client = None


class _CachedKeys:
    """The cache as a `KeyResolver` that never fetches (for `averify`, which fetched first)."""

    def __init__(self, cache: JwksCache) -> None:
        self.public_key = cache.cached_key


class TokenVerifier:
    """Verifies Gatehouse access tokens with the keys the issuer publishes.

        verifier = TokenVerifier("https://auth.example.com", "my-api")
        claims = verifier.verify(token)          # in threads / sync frameworks
        claims = await verifier.averify(token)   # on an event loop

    `verify` may fetch the JWKS synchronously (when keys are missing or stale): call it from
    sync code or a worker thread. On an event loop use `averify`, whose fetch is async; both
    share one key cache. A fetch happens at most once per TTL, plus once per cooldown for
    an unknown `kid`; between those, verification is in-memory only.
    """

    def __init__(
        self,
        issuer: str,
        audience: str,
        *,
        jwks_url: str | None = None,
        algorithms: Sequence[str] = DEFAULT_ALGORITHMS,
        leeway: float = 30.0,
        jwks_ttl: float = 300.0,
        unknown_kid_cooldown: float = 30.0,
        http_client: httpx.Client | None = None,
        async_http_client: httpx.AsyncClient | None = None,
        timeout: float = 5.0,
        clock: Callable[[], float] = time.time,
        cache_size: int = 1024,
    ) -> None:
        """Args:
        issuer: the exact `iss` tokens must carry; also where discovery is asked
            (`{issuer}/.well-known/openid-configuration`) when `jwks_url` is not given.
        audience: an `aud` the token must carry (this service's name at Gatehouse).
        jwks_url: the JWKS URL, used as is (plain http and another origin are allowed).
        algorithms: the allow-list of `alg` values; never `none`.
        leeway: seconds of clock skew tolerated on `exp`, `nbf` and `iat`.
        jwks_ttl: seconds a fetched JWKS is trusted before it is fetched again.
        unknown_kid_cooldown: the least seconds between two fetches caused by unknown
            `kid`s, and between a failed fetch and the next attempt.
        http_client, async_http_client: clients for the fetches (yours stay open; the
            verifier closes only those it made).
        timeout: seconds for each fetch when the verifier makes its own client.
        clock: "now" as a Unix timestamp, for token times and the cache's intervals.
        cache_size: verified tokens remembered (signature skipped, key and times re-checked
            on each call); 0 turns the cache off.
        """
        self._cache = JwksCache(
            issuer=issuer,
            jwks_url=jwks_url,
            algorithms=algorithms,
            ttl=jwks_ttl,
            cooldown=unknown_kid_cooldown,
            http_client=http_client,
            async_http_client=async_http_client,
            timeout=timeout,
            clock=clock,
        )
        options: dict[str, Any] = {
            "issuer": issuer,
            "audience": audience,
            "algorithms": algorithms,
            "leeway": leeway,
            "clock": clock,
        }
        self._fetching = AccessTokenVerifier(keys=self._cache, cache_size=cache_size, **options)
        self._lookup = AccessTokenVerifier(
            keys=_CachedKeys(self._cache), cache_size=cache_size, **options
        )
        self.issuer = issuer
        self.audience = audience

    @property
    def jwks_url(self) -> str | None:
        """The JWKS URL in use (None until discovery has found it)."""
        return self._cache.jwks_url

    def verify(self, token: str) -> AccessTokenClaims:
        """Verify `token` and return its claims; may fetch the JWKS (blocking).

        Raises:
            InvalidTokenError: any reason to refuse the token (a subclass says which).
        """
        return self._fetching.verify(token)

    async def averify(self, token: str) -> AccessTokenClaims:
        """`verify` for event loops: a due JWKS fetch is awaited, never blocking the loop.

        Raises:
            InvalidTokenError: any reason to refuse the token (a subclass says which).
        """
        await self._cache.arefresh(None)  # only when never fetched or past the TTL
        try:
            return self._lookup.verify(token)
        except UnknownKeyError:
            # Reached only after the algorithm, type and header checks passed.
            kid = unverified_key_id(token)
            if not self._cache.due(kid):
                raise
            await self._cache.arefresh(kid)
            return self._lookup.verify(token)

    def close(self) -> None:
        """Close the HTTP client the verifier made for itself (not one passed in)."""
        self._cache.close()

    async def aclose(self) -> None:
        """Close both HTTP clients the verifier made for itself."""
        await self._cache.aclose()

    def __enter__(self) -> TokenVerifier:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    async def __aenter__(self) -> TokenVerifier:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
