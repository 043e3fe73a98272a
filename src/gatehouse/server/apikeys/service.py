"""API key use cases: issue, list, revoke, and authenticate a key or its client credentials.

A key is shown once; storage keeps HMAC-SHA256(pepper, key) and finds the record by the
key's public id. Authentication computes the presented key's digest before any lookup and
compares it in constant time, so an unknown id and a wrong secret cost the same and answer
the same. Checking a key is the hot path of every request a script makes: the record and
its owner come from the principal cache (evicted like sessions, by the owner's user id,
whenever a key is revoked or the owner changes), so a warm check reads no database.
"""

from __future__ import annotations

import hmac
import re
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from uuid import UUID

from gatehouse.server.accounts.models import User
from gatehouse.server.apikeys import format as key_format
from gatehouse.server.apikeys.models import (
    API_KEY_PREFIX,
    INTROSPECT_SCOPE,
    ApiKey,
    ApiKeyLookup,
    ApiKeyPage,
    ClientToken,
    IssuedApiKey,
)
from gatehouse.server.apikeys.repository import ApiKeyRepository
from gatehouse.server.audit.models import Actor, AuditEvent, AuditRecorder, Outcome, Subject
from gatehouse.server.clock import Clock
from gatehouse.server.errors import (
    InvalidAccessTokenError,
    InvalidClientError,
    InvalidInputError,
    InvalidScopeError,
    NotFoundError,
)
from gatehouse.server.pagination import decode_time_cursor, time_page
from gatehouse.server.secret import OpaqueTokens
from gatehouse.server.sessions.cache import Loaded, PrincipalCache
from gatehouse.server.tokens.issuer import AccessTokenIssuer
from gatehouse.server.usage import UsageRecorder

# last_used_at is written at most this often per key (and per process, before the write).
TOUCH_INTERVAL = timedelta(minutes=1)
_NEVER = datetime.max.replace(tzinfo=UTC)
_NAME = re.compile(r"[^\x00-\x1f\x7f]{1,100}")
_CACHE_PREFIX = "api-key:"


class _NotRevoked(Exception):
    """Raised inside a staged block to drop the event of a revocation that did not happen."""


class ApiKeyService:
    """API keys of users and service accounts."""

    def __init__(
        self,
        *,
        keys: ApiKeyRepository,
        opaque: OpaqueTokens,
        cache: PrincipalCache,
        issuer: AccessTokenIssuer,
        audit: AuditRecorder,
        clock: Clock,
    ) -> None:
        self._keys = keys
        self._audit = audit
        self._issuer = issuer
        self._opaque = opaque
        self._cache = cache
        self._clock = clock
        self._usage = UsageRecorder(TOUCH_INTERVAL)

    async def issue(
        self,
        owner: User,
        *,
        name: str,
        scopes: Iterable[str] | None,
        expires_at: datetime | None,
        by_admin: bool,
        by: Actor | None = None,
    ) -> IssuedApiKey:
        """Create a key for `owner` and return it with its record (the key, this once).

        `scopes` are role names of the owner (None: all of them) plus `introspect`, which
        only an admin (`by_admin`: the caller is one, or the operator at the CLI) may add.
        `by` is who creates it, for the audit trail (default: the owner).

        Raises:
            InvalidInputError: the name is empty, too long or has control characters, or
                `expires_at` is not a future, timezone-aware instant.
            InvalidScopeError: a scope is neither a role of the owner nor an allowed
                `introspect`.
        """
        if _NAME.fullmatch(name) is None:
            raise InvalidInputError(
                "The name must be 1-100 characters without control characters.", field="name"
            )
        now = self._clock.now()
        if expires_at is not None and (expires_at.tzinfo is None or expires_at <= now):
            raise InvalidInputError(
                "expires_at must be a future instant with a time zone.", field="expires_at"
            )
        granted = _granted_scopes(owner, scopes, by_admin=by_admin)
        public_id, key = key_format.new_key()
        record = ApiKey(
            id=uuid.uuid4(),
            public_id=public_id,
            owner_id=owner.id,
            name=name,
            scopes=granted,
            created_at=now,
            last_used_at=None,
            # Checked to the second: sub-second parts would only confuse the comparison.
            expires_at=expires_at.astimezone(UTC).replace(microsecond=0) if expires_at else None,
        )
        event = AuditEvent(
            type="api_key.created",
            outcome="success",
            actor=by or _owner(owner.id),
            subject=Subject("api_key", str(record.id)),
            detail={
                "owner_id": str(owner.id),
                "client_id": record.client_id,
                "scopes": " ".join(sorted(granted)),
                "expires": record.expires_at is not None,
            },
        )
        with self._audit.staged(event):
            await self._keys.add(record, self._opaque.digest(key))
        return IssuedApiKey(record=record, key=key)

    async def list_own(self, owner_id: UUID) -> list[ApiKey]:
        """Every unrevoked key of one owner, oldest first."""
        return await self._keys.list(owner_id=owner_id, limit=10_000, after=None)

    async def get_own(self, key_id: UUID, *, owner_id: UUID) -> ApiKey:
        """Raises: NotFoundError for unknown, revoked and other users' keys alike."""
        key = await self._keys.get(key_id, owner_id=owner_id)
        if key is None:
            raise NotFoundError("No such API key.")
        return key

    async def list_page(
        self, *, owner_id: UUID | None, limit: int, cursor: str | None
    ) -> ApiKeyPage:
        """One page of unrevoked keys (of one owner, or all), oldest first.

        Raises:
            InvalidInputError: the cursor is malformed.
        """
        after = decode_time_cursor(cursor) if cursor else None
        keys, next_cursor = time_page(
            await self._keys.list(owner_id=owner_id, limit=limit + 1, after=after), limit
        )
        return ApiKeyPage(items=keys, next_cursor=next_cursor)

    async def revoke(self, key_id: UUID, *, owner_id: UUID | None, by: Actor | None = None) -> None:
        """Revoke a key; it stops working at once here and within the revocation poll
        interval everywhere else (milliseconds on PostgreSQL).

        `by` is who revokes it, for the audit trail (default: the owner `owner_id`, else
        the server itself).

        Raises:
            NotFoundError: no unrevoked key with that id (belonging to `owner_id`).
        """
        actor = by or (_owner(owner_id) if owner_id is not None else Actor.system())
        if not await self._revoke(key_id, owner_id, actor, via=None):
            raise NotFoundError("No such API key.")

    async def revoke_presented(self, key: str) -> None:
        """Revoke the key presented whole (RFC 7009: holding it is the authority); a key
        that is not live is left alone, and nothing tells the difference."""
        found = await self._check(key)
        if found is not None:
            await self._revoke(found[0].id, found[1].id, _owner(found[1].id), via="oauth_revoke")

    async def _revoke(
        self, key_id: UUID, owner_id: UUID | None, actor: Actor, *, via: str | None
    ) -> bool:
        """Revoke with an `api_key.revoked` record in the same transaction; False, with
        nothing recorded, when no such live key was there."""
        event = AuditEvent(
            type="api_key.revoked",
            outcome="success",
            actor=actor,
            subject=Subject("api_key", str(key_id)),
            detail={"via": via} if via else {},
        )
        try:
            with self._audit.staged(event):
                if not await self._keys.revoke(key_id, owner_id=owner_id, now=self._clock.now()):
                    raise _NotRevoked
        except _NotRevoked:
            return False
        return True

    async def authenticate(self, key: str) -> tuple[ApiKey, User]:
        """The live key and its active owner, for a key presented on a protected route.

        Raises:
            InvalidAccessTokenError: malformed, unknown, wrong, revoked or expired key, or
                an inactive owner; one error for all.
        """
        found = await self._check(key)
        if found is None:
            raise InvalidAccessTokenError("The API key is invalid, expired or revoked.")
        return found

    async def authenticate_client(self, client_id: str, client_secret: str) -> tuple[ApiKey, User]:
        """The live key and active owner behind OAuth client credentials.

        Raises:
            InvalidClientError: as `authenticate`, for the token endpoint.
        """
        found = await self._check(key_format.join_client_credentials(client_id, client_secret))
        if found is None:
            raise InvalidClientError
        return found

    async def exchange(self, client_id: str, client_secret: str, scope: str | None) -> ClientToken:
        """The client-credentials grant: an access token for the key's owner, carrying the
        key's effective scopes (or the subset `scope` asks for), and no refresh token.

        Raises:
            InvalidClientError: the credentials name no live key of an active owner.
            InvalidScopeError: `scope` asks for more than the key allows.
        """
        try:
            record, owner = await self.authenticate_client(client_id, client_secret)
        except InvalidClientError as exc:
            # The client id the caller sent is not echoed: it could be a whole key pasted
            # in the wrong field.
            self._exchanged(None, "failure", reason=exc.code)
            raise
        allowed = record.effective_scopes(owner)
        granted = allowed if scope is None else frozenset(scope.split())
        if not granted <= allowed:
            self._exchanged(record, "failure", reason=InvalidScopeError.code)
            raise InvalidScopeError("The requested scope exceeds what the API key allows.")
        self._exchanged(record, "success", scope=" ".join(sorted(granted)))
        token = await self._issuer.issue(
            subject=owner.id,
            session_id=None,
            roles=granted & owner.roles,
            client_id=record.client_id,
            scope=granted,
        )
        return ClientToken(
            access_token=token, expires_in=self._issuer.ttl_seconds, scope=" ".join(sorted(granted))
        )

    async def live_client(self, client_id: str, owner_id: UUID) -> tuple[ApiKey, User] | None:
        """The key of a client-credentials access token, if it and its owner are still live
        (no secret: the token's signature already vouched for the key)."""
        public_id = client_id.removeprefix(API_KEY_PREFIX + "_")
        found = await self._lookup(public_id, self._clock.now())
        if found is None or found.owner.id != owner_id:
            return None
        return found.record, found.owner

    async def _check(self, key: str) -> tuple[ApiKey, User] | None:
        # The digest is computed before the lookup, for unknown ids as for known ones.
        digest = self._opaque.digest(key)
        public_id = key_format.split_key(key)
        if public_id is None:
            return None
        now = self._clock.now()
        found = await self._lookup(public_id, now)
        if found is None or not hmac.compare_digest(found.digest, digest):
            return None
        self._touch(found.record, now)
        return found.record, found.owner

    async def _lookup(self, public_id: str, now: datetime) -> ApiKeyLookup | None:
        """The key if it is live and its owner active (a cached entry stops at the key's
        expiry and is evicted when the key is revoked or the owner changes)."""
        cache_key = _CACHE_PREFIX + public_id

        async def load() -> Loaded | None:
            found = await self._keys.find_by_public_id(public_id)
            if found is None or not found.record.is_live(now) or not found.owner.is_active:
                return None
            return Loaded(found.owner, found.record.expires_at or _NEVER, found)

        entry = self._cache.lookup(cache_key, now) or await self._cache.fill(cache_key, load)
        if entry is None or not isinstance(entry.payload, ApiKeyLookup):
            return None
        return entry.payload

    def _exchanged(self, record: ApiKey | None, outcome: Outcome, **detail: str) -> None:
        self._audit.record(
            AuditEvent(
                type="client_credentials.issued",
                outcome=outcome,
                actor=_owner(record.owner_id) if record else Actor.anonymous(),
                subject=Subject("api_key", str(record.id)) if record else None,
                detail=detail,
            )
        )

    def _touch(self, key: ApiKey, now: datetime) -> None:
        """Record the use in the background (its last-use time and an `api_key.used`
        event), at most once a minute per key and process."""
        if self._usage.due(key.id, key.last_used_at, now):
            self._usage.write(self._keys.touch(key.id, now=now, not_since=now - TOUCH_INTERVAL))
            self._audit.record(
                AuditEvent(
                    type="api_key.used",
                    outcome="success",
                    actor=_owner(key.owner_id),
                    subject=Subject("api_key", str(key.id)),
                    detail={"client_id": key.client_id},
                )
            )

    async def close(self) -> None:
        """Wait for the last-use writes in flight."""
        await self._usage.close()


def _owner(owner_id: UUID) -> Actor:
    return Actor.user(owner_id)


def _granted_scopes(owner: User, scopes: Iterable[str] | None, *, by_admin: bool) -> frozenset[str]:
    roles = owner.roles - {INTROSPECT_SCOPE}
    if scopes is None:
        return roles
    asked = frozenset(scopes)
    if not asked <= roles | ({INTROSPECT_SCOPE} if by_admin else frozenset()):
        raise InvalidScopeError(
            "Scopes must be roles the owner has; only an admin may add introspect.",
            field="scopes",
        )
    return asked
