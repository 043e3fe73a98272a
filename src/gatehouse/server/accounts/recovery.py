"""Account recovery: password reset and email verification by single-use mailed links.

The tokens (`ghr_...` reset, `ghv_...` verify: a prefix and 256 random bits) are shown
only in the mail; storage keeps their HMAC digest under a pepper per purpose, so neither a
copy of the database nor a token of another kind (an access or refresh token, an API key)
can ever match. A token is live until used, expired, or superseded by a newer one of its
purpose; a password change (by the user, by a reset) ends every live reset token.

Forgot-password must not tell an attacker whether an address has an account, by answer or
by timing, and must not wait for a mail server. So the request does the same small thing
for every address: it inserts one sealed outbox job (`password_reset`, with the address)
and answers 202. The outbox worker resolves the job later: an unknown address ends there;
a known one gets a token (superseding older ones), its mail is queued in the same
transaction as the token, and `password.reset_requested` is recorded. Verification mails
go the same way (`verify_email` jobs), and both count against the limit of 3 mails per
address per 15 minutes (`mail_allowed`, keyed by a digest of the canonical address).

Guessing is limited per client address: a reset or verification attempt first asks
`check_address`, and each token that is not live counts as a failed attempt
(`address_failed`), like a wrong password.
"""

from __future__ import annotations

import logging
import re
import uuid
from datetime import timedelta
from typing import Any, NoReturn, Protocol
from uuid import UUID

from gatehouse.server.accounts.emails import canonical_email
from gatehouse.server.accounts.models import (
    RESET,
    VERIFY,
    AccountToken,
    NewAccountToken,
    TokenPurpose,
    User,
)
from gatehouse.server.accounts.passwords import PasswordHasher, check_new_password
from gatehouse.server.accounts.repository import AccountTokenRepository, UserRepository
from gatehouse.server.audit.models import Actor, AuditEvent, AuditRecorder, Subject
from gatehouse.server.clock import Clock
from gatehouse.server.context import request_context
from gatehouse.server.errors import (
    EmailAlreadyVerifiedError,
    EmailMissingError,
    InvalidEmailError,
    InvalidResetTokenError,
    InvalidVerificationTokenError,
    LimitsUnavailableError,
)
from gatehouse.server.mail.models import ClaimedItem, MailMessage
from gatehouse.server.mail.outbox import MailOutbox
from gatehouse.server.mail.templates import MailTemplates
from gatehouse.server.secret import OpaqueTokens

log = logging.getLogger("gatehouse")

RESET_PREFIX = "ghr_"
VERIFY_PREFIX = "ghv_"
RESET_JOB = "password_reset"
VERIFY_JOB = "verify_email"
# What OpaqueTokens.new makes: the prefix and 43 base64url characters (256 bits).
_SHAPE = {
    RESET: re.compile(r"ghr_[A-Za-z0-9_-]{43}"),
    VERIFY: re.compile(r"ghv_[A-Za-z0-9_-]{43}"),
}


class RecoveryLimits(Protocol):
    """The part of `limits.AbuseGuard` recovery asks."""

    async def check_address(self, ip: str | None) -> None: ...

    async def address_failed(self, ip: str | None) -> None: ...

    async def recovery(self, ip: str | None) -> None: ...

    async def mail_allowed(self, address_key: str) -> bool: ...

    async def account_reset(self, canonical: str) -> None: ...


class RecoveryService:
    """Forgot / reset password; request / confirm email verification."""

    def __init__(
        self,
        *,
        users: UserRepository,
        tokens: AccountTokenRepository,
        outbox: MailOutbox,
        templates: MailTemplates,
        limits: RecoveryLimits,
        hasher: PasswordHasher,
        reset_digests: OpaqueTokens,
        verify_digests: OpaqueTokens,
        address_keys: OpaqueTokens,
        audit: AuditRecorder,
        clock: Clock,
        site: str,
        reset_url: str,
        verify_url: str,
        reset_ttl: timedelta,
        verify_ttl: timedelta,
    ) -> None:
        self._users = users
        self._tokens = tokens
        self._outbox = outbox
        self._templates = templates
        self._limits = limits
        self._hasher = hasher
        self._digests = {RESET: reset_digests, VERIFY: verify_digests}
        self._address_keys = address_keys
        self._audit = audit
        self._clock = clock
        self._site = site
        self._reset_url = reset_url
        self._verify_url = verify_url
        self._reset_ttl = reset_ttl
        self._verify_ttl = verify_ttl
        outbox.register(RESET_JOB, self._resolve_reset)
        outbox.register(VERIFY_JOB, self._resolve_verification)

    # --- password reset ----------------------------------------------------------------

    async def forgot(self, email: str, *, ip: str | None) -> None:
        """Queue a reset for `email`, whether or not an account has it (see the module
        docstring: the same work for every address).

        Raises:
            RateLimitedError: the client address asked too often (`recovery_ip_limit`).
            LimitsUnavailableError, StorageUnavailableError.
        """
        await self._limits.recovery(ip)
        expires_at = self._clock.now() + self._reset_ttl
        await self._outbox.enqueue(RESET_JOB, {"email": email, **_origin()}, expires_at=expires_at)

    async def reset(self, token: str, new_password: str, *, ip: str | None) -> None:
        """Set a new password with a live reset token; end every session of the user.

        The token is used up only by a successful reset: a new password the policy
        refuses leaves it live, so the user can try another.

        Raises:
            RateLimitedError: the client address has too many failed attempts.
            InvalidResetTokenError: the token is not live (of any kind, for any reason).
            WeakPasswordError: the new password breaks the policy.
            LimitsUnavailableError, OverloadedError, StorageUnavailableError.
        """
        await self._limits.check_address(ip)
        found = await self._live(RESET, token)
        if found is None:
            await self._refuse(RESET, ip)
        normalised = check_new_password(
            new_password, username_canonical=found.user.username_canonical
        )
        password_hash = await self._hasher.hash(normalised)
        event = self._event("password.reset", found.user, actor=Actor.anonymous())
        with self._audit.staged(event):
            done = await self._tokens.reset_password(found, password_hash, self._clock.now())
            if not done:  # used by a concurrent reset, or expired, since it was found
                await self._refuse(RESET, ip)
        # Proving control of the mailbox unlocks the name at once: an owner whose name an
        # attacker keeps locked gets back in through a reset. The password is set already,
        # so a limit store that is down now only leaves the lock to run out.
        try:
            await self._limits.account_reset(found.user.username_canonical)
        except LimitsUnavailableError:
            log.warning("could not clear the lockout of a name after its password reset")

    async def _resolve_reset(self, job: ClaimedItem, data: dict[str, Any]) -> None:
        """The outbox job of `forgot`: mint and mail a token if the address is an account's."""
        try:
            _, canonical = canonical_email(str(data["email"]))
        except InvalidEmailError:
            return
        user = await self._users.find_by_email(canonical)
        if user is None or not user.is_active or user.is_service_account or user.email is None:
            return
        await self._mail_token(
            job,
            data,
            user,
            purpose=RESET,
            canonical=canonical,
            event_type="password.reset_requested",
            actor=Actor.anonymous(),
        )

    # --- email verification ------------------------------------------------------------

    async def request_verification(self, user: User, *, ip: str | None) -> None:
        """Queue a verification mail to the user's current address.

        Raises:
            EmailMissingError: the account has no address.
            EmailAlreadyVerifiedError: the address is verified already.
            RateLimitedError: the client address asked too often (`recovery_ip_limit`).
            LimitsUnavailableError, StorageUnavailableError.
        """
        if user.email is None:
            raise EmailMissingError
        if user.email_verified:
            raise EmailAlreadyVerifiedError
        await self._limits.recovery(ip)
        await self.queue_verification(user)

    async def queue_verification(self, user: User) -> None:
        """Queue a verification mail without the per-address request limit (registration
        with `GATEHOUSE_VERIFY_ON_REGISTER`, which has its own limit). Nothing for an
        account without an address.

        Raises:
            StorageUnavailableError: the database cannot be reached.
        """
        if user.email is None:
            return
        expires_at = self._clock.now() + self._verify_ttl
        data = {"user_id": str(user.id), **_origin()}
        await self._outbox.enqueue(VERIFY_JOB, data, expires_at=expires_at)

    async def verify(self, token: str, *, ip: str | None) -> None:
        """Mark the address a live verification token was mailed to as verified, if it is
        still the user's address.

        Raises:
            RateLimitedError: the client address has too many failed attempts.
            InvalidVerificationTokenError: the token is not live, or the address changed.
            LimitsUnavailableError, StorageUnavailableError.
        """
        await self._limits.check_address(ip)
        found = await self._live(VERIFY, token)
        if found is None:
            await self._refuse(VERIFY, ip)
        event = self._event("email.verified", found.user, actor=_user_actor(found.user))
        with self._audit.staged(event):
            if not await self._tokens.verify_email(found, self._clock.now()):
                await self._refuse(VERIFY, ip)

    async def _resolve_verification(self, job: ClaimedItem, data: dict[str, Any]) -> None:
        """The outbox job of `queue_verification`: mail a token to the current address."""
        user = await self._users.find(UUID(str(data["user_id"])))
        if user is None or not user.is_active or user.email is None or user.email_verified:
            return
        try:
            _, canonical = canonical_email(user.email)
        except InvalidEmailError:
            return
        holder = await self._users.find_by_email(canonical)
        if holder is None or holder.id != user.id:
            # An address from before migration 0006 that an older account holds.
            log.info("no verification mail for user %s: another account holds the address", user.id)
            return
        await self._mail_token(
            job,
            data,
            user,
            purpose=VERIFY,
            canonical=canonical,
            event_type="email.verification_requested",
            actor=_user_actor(user),
        )

    async def prune(self) -> int:
        """Delete expired tokens; return how many.

        Raises:
            StorageUnavailableError: the database cannot be reached.
        """
        return await self._tokens.prune(self._clock.now())

    # --- shared steps ------------------------------------------------------------------

    async def _mail_token(
        self,
        job: ClaimedItem,
        data: dict[str, Any],
        user: User,
        *,
        purpose: TokenPurpose,
        canonical: str,
        event_type: str,
        actor: Actor,
    ) -> None:
        """Mint a token, and in one transaction store it (ending older ones), queue its
        mail and finish `job`; unless the address had its 3 mails of the window."""
        assert user.email is not None  # noqa: S101 - both callers checked
        address_key = self._address_keys.digest(canonical).hex()
        if not await self._limits.mail_allowed(address_key):
            log.info(
                "no %s mail for user %s: the address had its mails of the window", purpose, user.id
            )
            return
        reset = purpose == RESET
        ttl = self._reset_ttl if reset else self._verify_ttl
        token, digest = self._digests[purpose].new(RESET_PREFIX if reset else VERIFY_PREFIX)
        now = self._clock.now()
        rendered = self._templates.render(
            RESET_JOB if reset else VERIFY_JOB,
            {
                "username": user.username,
                "email": user.email,
                "link": _link(self._reset_url if reset else self._verify_url, token),
                "valid_for": valid_for(ttl),
                "site": self._site,
            },
        )
        mail = self._outbox.mail_item(
            MailMessage(
                to=user.email, subject=rendered.subject, text=rendered.text, html=rendered.html
            ),
            expires_at=now + ttl,
        )
        record = NewAccountToken(
            id=uuid.uuid4(),
            user_id=user.id,
            purpose=purpose,
            digest=digest,
            email=None if reset else canonical,
            created_at=now,
            expires_at=now + ttl,
        )
        event = self._event(event_type, user, actor=actor, origin=data)
        with self._audit.staged(event):
            issued = await self._tokens.issue(record, mail=mail, job=job)
        if issued:
            self._outbox.wake()

    async def _live(self, purpose: TokenPurpose, token: str) -> AccountToken | None:
        # A token of another shape (an access token, a refresh token, an API key, a
        # truncated link) is refused without a lookup; the digest decides the rest.
        if not _SHAPE[purpose].fullmatch(token):
            return None
        digest = self._digests[purpose].digest(token)
        return await self._tokens.find_live(purpose, digest, self._clock.now())

    async def _refuse(self, purpose: TokenPurpose, ip: str | None) -> NoReturn:
        """Count the failed attempt against the address and raise the token's error."""
        error = InvalidResetTokenError() if purpose == RESET else InvalidVerificationTokenError()
        self._audit.record(
            AuditEvent(
                type="password.reset" if purpose == RESET else "email.verified",
                outcome="failure",
                actor=Actor.anonymous(),
                at=self._clock.now(),
                detail={"reason": error.code},
            )
        )
        await self._limits.address_failed(ip)
        raise error

    def _event(
        self, event_type: str, user: User, *, actor: Actor, origin: dict[str, Any] | None = None
    ) -> AuditEvent:
        extra: dict[str, Any] = {}
        if origin is not None:
            # A job's event happens in the worker: the request's origin came in the job.
            extra = {key: origin.get(key) for key in ("ip", "user_agent", "request_id")}
        return AuditEvent(
            type=event_type,
            outcome="success",
            actor=actor,
            subject=Subject("user", str(user.id)),
            at=self._clock.now(),
            **extra,
        )


def _user_actor(user: User) -> Actor:
    return Actor.user(user.id)


def _origin() -> dict[str, str | None]:
    """The request's id and origin, kept in a job for the audit event it leads to."""
    context = request_context()
    if context is None:
        return {"ip": None, "user_agent": None, "request_id": None}
    return {"ip": context.ip, "user_agent": context.user_agent, "request_id": context.request_id}


def _link(base: str, token: str) -> str:
    return f"{base}{'&' if '?' in base else '?'}token={token}"


def valid_for(ttl: timedelta) -> str:
    """A duration as a mail says it: "30 minutes", "1 hour", "2 days"."""
    seconds = int(ttl.total_seconds())
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size and seconds % size == 0:
            count = seconds // size
            return f"{count} {unit}{'s' if count != 1 else ''}"
    minutes = max(1, round(seconds / 60))
    return f"{minutes} minute{'s' if minutes != 1 else ''}"
