"""Session use cases: open on login, rotate refresh tokens, authenticate, revoke.

Refresh tokens follow RFC 9700 s4.14.2: opaque, rotated on every use, and a rotated token
presented again revokes its whole session. There is no grace window: a client that refreshes
twice in parallel with one token loses the session, exactly as an attacker replaying it would.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import uuid
from datetime import datetime, timedelta
from typing import NoReturn
from uuid import UUID

from gatehouse.server.accounts.models import User
from gatehouse.server.audit.models import Actor, AuditEvent, AuditRecorder, Outcome, Subject
from gatehouse.server.clock import Clock
from gatehouse.server.errors import (
    InvalidAccessTokenError,
    InvalidCredentialsError,
    InvalidGrantError,
    NotFoundError,
)
from gatehouse.server.secret import OpaqueTokens
from gatehouse.server.sessions.cache import Loaded, PrincipalCache
from gatehouse.server.sessions.models import (
    ClientInfo,
    CookieLogin,
    Principal,
    Session,
    TokenPair,
)
from gatehouse.server.sessions.repository import SessionRepository
from gatehouse.server.tokens.issuer import AccessTokenIssuer
from gatehouse.server.tokens.service import KeyService
from gatehouse.server.usage import UsageRecorder

# The modules, not the package: the package also exports the JWKS and introspection
# verifiers, which use httpx, and concern folders stay free of HTTP clients.
from gatehouse.verifier.errors import InvalidTokenError, UnknownKeyError
from gatehouse.verifier.jwt import AccessTokenClaims, AccessTokenVerifier, unverified_key_id

REFRESH_TOKEN_PREFIX = "ghr_"
COOKIE_PREFIX = "ghs_"
# A cookie session's last use (and its sliding idle expiry) is written at most this often.
_COOKIE_TOUCH_INTERVAL = timedelta(minutes=1)
_COOKIE_CACHE_PREFIX = "cookie:"
# Rows per pruning transaction: a few milliseconds of work on SQLite.
_PRUNE_BATCH = 500
_MAX_REFRESH_TOKEN_LENGTH = 128


class _NotRevoked(Exception):
    """Raised inside a staged block to drop the event of a revocation that did not happen."""


class SessionService:
    """Sessions and the tokens that stand for them."""

    def __init__(
        self,
        *,
        sessions: SessionRepository,
        issuer: AccessTokenIssuer,
        verifier: AccessTokenVerifier,
        keys: KeyService,
        opaque: OpaqueTokens,
        csrf_key: bytes,
        cache: PrincipalCache,
        audit: AuditRecorder,
        clock: Clock,
        idle_ttl_seconds: float,
        absolute_ttl_seconds: float,
        retention_seconds: float,
    ) -> None:
        self._sessions = sessions
        self._issuer = issuer
        self._verifier = verifier
        self._keys = keys
        self._opaque = opaque
        self._csrf_key = csrf_key
        self._usage = UsageRecorder(_COOKIE_TOUCH_INTERVAL)
        self._cache = cache
        self._audit = audit
        self._clock = clock
        self._idle = idle_ttl_seconds
        self._absolute = absolute_ttl_seconds
        self._retention = retention_seconds

    async def open(self, user: User, client: ClientInfo) -> TokenPair:
        """Start a session for a freshly authenticated user and return its first pair.

        Raises:
            InvalidCredentialsError: the user changed (a password reset or change, a
                deactivation) after it was authenticated: the session is not opened.
        """
        refresh_token, digest = self._opaque.new(REFRESH_TOKEN_PREFIX)
        session = self._new_session(user, client)
        await self._sessions.create(session, digest)
        await self._confirm(user, session)
        return await self._pair(user, session.id, refresh_token)

    async def _confirm(self, user: User, session: Session) -> None:
        # A login checked the password it read; a reset that committed between that read
        # and the insert revoked the sessions there were then, not this one. So the new
        # session stands only if the user is still as read.
        stands = await self._sessions.stands(
            session.id, user_as_of=user.updated_at, now=self._clock.now()
        )
        if not stands:
            raise InvalidCredentialsError

    async def open_cookie(self, user: User, client: ClientInfo) -> CookieLogin:
        """Start a browser session: a fresh id and cookie every time (no fixation), on the
        same record, list and clocks as token sessions, and no refresh token anyone holds."""
        cookie, cookie_digest = self._opaque.new(COOKIE_PREFIX)
        _, unusable_refresh = self._opaque.new(REFRESH_TOKEN_PREFIX)
        session = self._new_session(user, client)
        await self._sessions.create(session, unusable_refresh, cookie_digest)
        await self._confirm(user, session)
        return CookieLogin(session=session, cookie=cookie, csrf_token=self.csrf_token(session.id))

    async def authenticate_cookie(self, cookie: str) -> Principal:
        """The live browser session of a cookie. Each use slides its idle expiry (written at
        most once a minute); the absolute expiry stays.

        Raises:
            InvalidAccessTokenError: unknown cookie, or its session or user is not live.
        """
        if not cookie.startswith(COOKIE_PREFIX) or len(cookie) > _MAX_REFRESH_TOKEN_LENGTH:
            raise InvalidAccessTokenError("The session has ended.")
        digest = self._opaque.digest(cookie)
        key = _COOKIE_CACHE_PREFIX + digest.hex()
        now = self._clock.now()

        async def load() -> Loaded | None:
            found = await self._sessions.find_cookie_session(digest, now=now)
            if found is None:
                return None
            user, session = found
            return Loaded(user, min(session.expires_at, session.refresh_expires_at), session)

        entry = self._cache.lookup(key, now) or await self._cache.fill(key, load)
        if entry is None or entry.user is None or not isinstance(entry.payload, Session):
            raise InvalidAccessTokenError("The session has ended.")
        user, session = entry.user, entry.payload
        if self._usage.due(session.id, session.last_used_at, now):
            self._usage.write(
                self._sessions.touch(
                    session.id,
                    now=now,
                    refresh_expires_at=min(now + timedelta(seconds=self._idle), session.expires_at),
                    not_since=now - _COOKIE_TOUCH_INTERVAL,
                )
            )
        return Principal(user=user, session_id=session.id, claims=None, roles=user.roles)

    def csrf_token(self, session_id: UUID) -> str:
        """The session's CSRF token: HMAC of its id, so no other session's token matches."""
        mac = hmac.new(self._csrf_key, session_id.bytes, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac).decode().rstrip("=")

    def csrf_matches(self, session_id: UUID, token: str) -> bool:
        return hmac.compare_digest(self.csrf_token(session_id), token)

    def _new_session(self, user: User, client: ClientInfo) -> Session:
        now = self._clock.now()
        expires_at = now + timedelta(seconds=self._absolute)
        return Session(
            id=uuid.uuid4(),
            user_id=user.id,
            device_name=client.device_name,
            ip_address=client.ip_address,
            user_agent=client.user_agent,
            created_at=now,
            last_used_at=now,
            expires_at=expires_at,
            refresh_expires_at=min(now + timedelta(seconds=self._idle), expires_at),
        )

    async def refresh(self, refresh_token: str) -> TokenPair:
        """Rotate a refresh token: the old one dies, a new pair is returned.

        Raises:
            InvalidGrantError: unknown, expired, revoked or reused token, or inactive user.
                Reuse also revokes the whole session.
        """
        if not refresh_token or len(refresh_token) > _MAX_REFRESH_TOKEN_LENGTH:
            self._refresh_failed(None, "unknown_token")
        old_digest = self._opaque.digest(refresh_token)
        found = await self._sessions.find_by_refresh(old_digest)
        now = self._clock.now()
        if found is None:
            self._refresh_failed(None, "unknown_token")
        session = found.session
        if not found.current:
            # RFC 9700 s4.14.2: a rotated token presented again means two parties hold
            # the session; revoke it so neither can continue.
            await self._revoke_reused(session, now, raced=False)
            raise InvalidGrantError
        if (
            session.revoked_at is not None
            or session.refresh_expires_at <= now
            or session.expires_at <= now
            or not found.user.is_active
        ):
            self._refresh_failed(
                session, "session_ended" if found.user.is_active else "user_inactive"
            )

        new_token, new_digest = self._opaque.new(REFRESH_TOKEN_PREFIX)
        refresh_expires_at = min(now + timedelta(seconds=self._idle), session.expires_at)
        try:
            with self._audit.staged(_session_event("token.refreshed", session)):
                if not await self._sessions.swap_refresh(
                    session.id,
                    old_digest,
                    new_digest,
                    now=now,
                    refresh_expires_at=refresh_expires_at,
                ):
                    raise InvalidGrantError  # the staged event goes with it
        except InvalidGrantError:
            # Another request rotated this token between our read and our write: that is
            # reuse too, and it ends the session.
            await self._revoke_reused(session, now, raced=True)
            raise
        return await self._pair(found.user, session.id, new_token)

    def _refresh_failed(self, session: Session | None, reason: str) -> NoReturn:
        """Record a refused refresh (no secret: the session, if any, and why) and raise."""
        self._audit.record(
            AuditEvent(
                type="token.refreshed",
                outcome="failure",
                actor=Actor.user(session.user_id) if session else Actor.anonymous(),
                subject=Subject("session", str(session.id)) if session else None,
                detail={"reason": InvalidGrantError.code, "why": reason},
            )
        )
        raise InvalidGrantError

    async def _revoke_reused(self, session: Session, now: datetime, *, raced: bool) -> None:
        """End a session whose rotated refresh token came back, with its record.

        Whoever presented it is not known (the user or a thief): the actor is anonymous.
        The event is a failure, recorded even when the session had ended already.
        """
        event = AuditEvent(
            type="refresh_token.reused",
            outcome="failure",
            actor=Actor.anonymous(),
            subject=Subject("session", str(session.id)),
            detail={"user_id": str(session.user_id), "concurrent": raced},
        )
        with self._audit.staged(event):
            await self._sessions.revoke(
                session.id, session.user_id, now=now, reason="refresh_token_reuse"
            )

    async def authenticate(self, access_token: str) -> Principal:
        """Check an access token and that its session and user are still live.

        The hot path of every protected route: the signature check and the session check
        are both answered from process memory when possible (see `cache`), and cost one
        indexed query otherwise.

        Raises:
            InvalidAccessTokenError: bad token, ended session or inactive user.
        """
        return await self.principal(await self.verify(access_token))

    async def verify(self, access_token: str) -> AccessTokenClaims:
        """The checked claims of an access token (signature, type, issuer, audience, times).

        Raises:
            InvalidAccessTokenError: the token is not one we issued, or no longer valid.
        """
        await self._keys.current()
        try:
            try:
                return self._verifier.verify(access_token)
            except UnknownKeyError:
                # Another worker may have rotated: reload once (rate-limited), then retry.
                await self._keys.reload_for_unknown_kid(unverified_key_id(access_token))
                return self._verifier.verify(access_token)
        except InvalidTokenError as exc:
            raise InvalidAccessTokenError from exc

    async def principal(self, claims: AccessTokenClaims) -> Principal:
        """The caller behind a session's verified access token.

        Raises:
            InvalidAccessTokenError: the token names no session, or its session or user is
                no longer live.
        """
        try:
            session_id, user_id = UUID(claims.session_id or ""), UUID(claims.subject)
        except ValueError as exc:
            raise InvalidAccessTokenError from exc
        now = self._clock.now()

        async def load() -> Loaded | None:
            found = await self._sessions.find_principal(session_id, user_id, now=now)
            return Loaded(*found) if found is not None else None

        entry = self._cache.lookup(session_id, now) or await self._cache.fill(session_id, load)
        if entry is None or entry.user is None or entry.user.id != user_id:
            raise InvalidAccessTokenError("The session of this access token has ended.")
        user = entry.user
        return Principal(user=user, session_id=session_id, claims=claims, roles=user.roles)

    async def revoke_by_refresh(self, refresh_token: str) -> None:
        """RFC 7009: end the session of a refresh token (current or rotated); no answer."""
        if not refresh_token or len(refresh_token) > _MAX_REFRESH_TOKEN_LENGTH:
            return
        found = await self._sessions.find_by_refresh(self._opaque.digest(refresh_token))
        if found is not None:
            await self._revoke_once(
                found.session.id,
                found.session.user_id,
                "session.revoked",
                "revoked",
                "oauth_revoke",
            )

    async def revoke_by_claims(self, claims: AccessTokenClaims) -> None:
        """RFC 7009: end the session named by a verified access token's `sid`."""
        try:
            session_id, user_id = UUID(claims.session_id or ""), UUID(claims.subject)
        except ValueError:
            return
        await self._revoke_once(session_id, user_id, "session.revoked", "revoked", "oauth_revoke")

    async def list_active(self, user_id: UUID) -> list[Session]:
        return await self._sessions.list_active(user_id, now=self._clock.now())

    async def revoke(self, user_id: UUID, session_id: UUID) -> None:
        """End one of the user's sessions.

        Raises:
            NotFoundError: no live session with that id belongs to the user.
        """
        if not await self._revoke_once(
            session_id, user_id, "session.revoked", "revoked_by_user", "sessions_api"
        ):
            raise NotFoundError("No such session.")

    async def logout(self, user_id: UUID, session_id: UUID) -> None:
        """End the caller's own session (token or cookie), with a `logout` record."""
        await self._revoke_once(session_id, user_id, "logout", "logout", None)

    async def logout_all(self, user_id: UUID) -> int:
        """End every session of the user; return how many were live."""
        event = AuditEvent(
            type="logout_all",
            outcome="success",
            actor=Actor.user(user_id),
            subject=Subject("user", str(user_id)),
        )
        with self._audit.staged(event):
            return await self._sessions.revoke_all(
                user_id, now=self._clock.now(), reason="logout_all"
            )

    async def _revoke_once(
        self, session_id: UUID, user_id: UUID, event_type: str, reason: str, via: str | None
    ) -> bool:
        """Revoke a live session of `user_id` and record `event_type` in the same
        transaction; False, with nothing recorded, when there was no such live session."""
        event = AuditEvent(
            type=event_type,
            outcome="success",
            actor=Actor.user(user_id),
            subject=Subject("session", str(session_id)),
            detail={"reason": reason} | ({"via": via} if via else {}),
        )
        try:
            with self._audit.staged(event):
                if not await self._sessions.revoke(
                    session_id, user_id, now=self._clock.now(), reason=reason
                ):
                    raise _NotRevoked
        except _NotRevoked:
            return False
        return True

    async def close(self) -> None:
        """Wait for the last-use writes in flight."""
        await self._usage.close()

    async def count_active(self) -> int:
        """How many sessions are live now, over all users (unrevoked, unexpired)."""
        return await self._sessions.count_active(now=self._clock.now())

    async def prune_ended(self) -> int:
        """Delete what is left of sessions that ended more than the retention ago (revoked,
        logged out or expired) with their refresh-token history; return the rows deleted.

        A pruned session's tokens are refused exactly as before (unknown instead of ended),
        so this changes no answer; it only keeps the tables from growing without end.
        Works in small transactions with a yield between them, so it never holds the
        database or the event loop for long.
        """
        before = self._clock.now() - timedelta(seconds=self._retention)
        total = 0
        while deleted := await self._sessions.delete_ended(before, limit=_PRUNE_BATCH):
            total += deleted
            await asyncio.sleep(0)
        return total

    async def _pair(self, user: User, session_id: UUID, refresh_token: str) -> TokenPair:
        access = await self._issuer.issue(subject=user.id, session_id=session_id, roles=user.roles)
        return TokenPair(
            access_token=access,
            expires_in=self._issuer.ttl_seconds,
            refresh_token=refresh_token,
            session_id=session_id,
        )


def _session_event(event_type: str, session: Session, outcome: Outcome = "success") -> AuditEvent:
    return AuditEvent(
        type=event_type,
        outcome=outcome,
        actor=Actor.user(session.user_id),
        subject=Subject("session", str(session.id)),
    )
