"""Self-service account use cases: register, authenticate, update profile, change password."""

from __future__ import annotations

import uuid
from typing import NoReturn, Protocol
from uuid import UUID

from gatehouse.server import metrics
from gatehouse.server.accounts.emails import canonical_email
from gatehouse.server.accounts.models import (
    NO_PASSWORD,
    USER_ROLE,
    NewUser,
    User,
    UserChanges,
    UserCredentials,
)
from gatehouse.server.accounts.names import canonical_username
from gatehouse.server.accounts.passwords import (
    HashSlot,
    PasswordHasher,
    check_new_password,
    normalise_password,
)
from gatehouse.server.accounts.repository import UserRepository
from gatehouse.server.audit.models import Actor, AuditEvent, AuditRecorder, Subject
from gatehouse.server.clock import Clock
from gatehouse.server.errors import (
    AccountLockedError,
    EmailUnverifiedError,
    GatehouseError,
    InvalidCredentialsError,
    InvalidEmailError,
    InvalidUsernameError,
    NotFoundError,
    OverloadedError,
    RateLimitedError,
    UnavailableError,
    WeakPasswordError,
)
from gatehouse.server.limits.guard import AbuseGuard, CredentialAttempt


class VerificationQueue(Protocol):
    """What registration asks to mail a verification link (`RecoveryService`)."""

    async def queue_verification(self, user: User) -> None: ...


class AccountService:
    """Accounts as their owners use them."""

    def __init__(
        self,
        *,
        users: UserRepository,
        hasher: PasswordHasher,
        audit: AuditRecorder,
        clock: Clock,
        guard: AbuseGuard,
        require_verified_email: bool = False,
        verification: VerificationQueue | None = None,
    ) -> None:
        """`verification`, when set (`GATEHOUSE_VERIFY_ON_REGISTER`), is asked to mail a
        verification link for every account registered with an address."""
        self._users = users
        self._hasher = hasher
        self._audit = audit
        self._clock = clock
        self._guard = guard
        self._require_verified_email = require_verified_email
        self._verification = verification

    async def register(
        self,
        username: str,
        password: str,
        *,
        email: str | None = None,
        roles: frozenset[str] = frozenset({USER_ROLE}),
    ) -> User:
        """Create an account.

        Raises:
            InvalidUsernameError: the username breaks the naming rules.
            WeakPasswordError: the password breaks the password policy.
            InvalidEmailError: the address is not valid.
            UsernameTakenError: the canonical username exists (also under a race: the
                unique index decides, so two registrations at once make one account).
            EmailTakenError: another account has the address (compared case-insensitively;
                the unique index decides races likewise).
        """
        display, canonical = canonical_username(username)
        address = canonical_email(email) if email is not None else None
        normalised = check_new_password(password, username_canonical=canonical)
        password_hash = await self._hasher.hash(normalised)
        user_id = uuid.uuid4()
        event = AuditEvent(
            type="user.registered",
            outcome="success",
            actor=Actor.user(user_id),
            subject=Subject("user", str(user_id)),
            detail={"username": canonical},
        )
        with self._audit.staged(event):
            user = await self._add(
                display, canonical, address, password_hash, roles, user_id=user_id
            )
        if self._verification is not None and user.email is not None:
            # After the account's own commit: should this insert fail, the account stands
            # and its owner can ask for the mail (POST /auth/verify/request).
            await self._verification.queue_verification(user)
        return user

    async def create_service_account(self, username: str, *, roles: frozenset[str]) -> User:
        """A user without a password: it cannot log in, it only holds API keys.

        Raises: InvalidUsernameError, UsernameTakenError.
        """
        display, canonical = canonical_username(username)
        return await self._add(display, canonical, None, NO_PASSWORD, roles, service=True)

    async def _add(
        self,
        display: str,
        canonical: str,
        address: tuple[str, str] | None,
        password_hash: str,
        roles: frozenset[str],
        *,
        service: bool = False,
        user_id: UUID | None = None,
    ) -> User:
        return await self._users.add(
            NewUser(
                id=user_id or uuid.uuid4(),
                username=display,
                username_canonical=canonical,
                email=address[0] if address else None,
                email_canonical=address[1] if address else None,
                password_hash=password_hash,
                roles=roles,
                created_at=self._clock.now(),
                is_service_account=service,
            )
        )

    async def authenticate(self, username: str, password: str, *, ip: str | None) -> User:
        """Check a username and password from the client address `ip`; return the user.

        Raises:
            OverloadedError: every place in the hash queue is taken (before anything else).
            RateLimitedError: the address used up its failed attempts.
            AccountLockedError: the name is locked, right password or not, existing or not.
            InvalidCredentialsError: unknown user, wrong password or inactive user, alike.
            EmailUnverifiedError: the password is right, verified addresses are required,
                and this user's is not.
            LimitsUnavailableError: the limit store cannot be reached (fail closed).
        """
        try:
            # Step 0: one place in the hash queue for the whole login, taken before any
            # other work, so a flood is shed at once instead of queueing.
            with self._hasher.reserve() as slot:
                return await self._authenticate(username, password, ip, slot)
        except GatehouseError as exc:
            metrics.LOGINS.labels(outcome=_login_outcome(exc)).inc()
            raise

    async def _authenticate(
        self, username: str, password: str, ip: str | None, slot: HashSlot
    ) -> User:
        # Step 1: the forms compared. A name or password that cannot be valid still costs
        # one hash and counts as a failure, so a malformed attempt is neither faster than a
        # wrong one nor free.
        try:
            _, canonical = canonical_username(username)
        except InvalidUsernameError:
            canonical = None
        try:
            normalised: str | None = normalise_password(password)
        except WeakPasswordError:
            normalised = None

        # Step 2: limits, before any hash or read. A locked name answers the same whether
        # it exists or not, and whatever the password, so no hash is computed for either.
        await self._guard.check_address(ip)
        if canonical is not None:
            await self._guard.check_account(canonical)

        # Step 3: the verdict. Unknown users and service accounts (no password) are
        # checked against a dummy hash, for equal timing; an inactive user fails only
        # after the hash, with the same error.
        if canonical is None or normalised is None:
            await self._hasher.burn(password[:256], slot=slot)
            return await self._fail(ip, canonical, "malformed")
        credentials = await self._users.find_credentials(canonical)
        if credentials is None or credentials.password_hash == NO_PASSWORD:
            await self._hasher.burn(normalised, slot=slot)
            reason = "unknown_user" if credentials is None else "service_account"
            return await self._fail(ip, canonical, reason)
        matches, new_hash = await self._hasher.verify(
            normalised, credentials.password_hash, slot=slot
        )
        if not matches:
            return await self._fail(ip, canonical, "wrong_password")
        user = credentials.user
        if not user.is_active:
            return await self._fail(ip, canonical, "inactive_user")

        # Step 4: the password is right. That clears the name's failures, unless a parallel
        # attempt locked it meanwhile: then even the right password is refused (429).
        await self._guard.account_succeeded(canonical)

        # Step 5: an outdated hash (bcrypt, older argon2 parameters) is upgraded now, while
        # the plain password is at hand.
        if new_hash is not None:
            await self._users.set_password_hash(
                user.id, new_hash, self._clock.now(), replacing=credentials.password_hash
            )

        # Step 6: the password was right (a success for the lockout), but logins may need
        # a verified address.
        subject = Subject("user", str(user.id))
        if self._require_verified_email and user.email is not None and not user.email_verified:
            self._audit.record(_login_event("login.failed", subject, "email_unverified"))
            raise EmailUnverifiedError
        self._audit.record(
            AuditEvent(
                type="login.succeeded",
                outcome="success",
                actor=Actor.user(user.id),
                subject=subject,
            )
        )
        metrics.LOGINS.labels(outcome="success").inc()
        return user

    async def _fail(self, ip: str | None, canonical: str | None, reason: str) -> NoReturn:
        """Count and record a failed login, then raise the error it answers."""
        subject = Subject("username", canonical) if canonical is not None else None
        try:
            locked = await self._guard.credential_failed(ip, canonical)
        finally:
            self._audit.record(_login_event("login.failed", subject, reason))
        if locked:
            self._audit.record(_login_event("account.locked", subject, reason))
        raise InvalidCredentialsError

    def password_attempt(self, ip: str | None, user: User) -> CredentialAttempt:
        """`async with accounts.password_attempt(ip, user):` around a check of the user's
        current password outside a login (`change_password`, `update_profile`): the address
        and the name are limited as for a login, a wrong password counts toward both, and a
        failure that locks the name records `account.locked`, as a login's does."""
        subject = Subject("username", user.username_canonical)

        def locked() -> None:
            self._audit.record(_login_event("account.locked", subject, "wrong_current_password"))

        return self._guard.attempt(ip, account=user.username_canonical, on_lock=locked)

    async def find_by_username(self, username: str) -> User | None:
        """The user with this (canonicalised) name, or None.

        Raises:
            InvalidUsernameError: the name cannot be a username.
        """
        _, canonical = canonical_username(username)
        credentials = await self._users.find_credentials(canonical)
        return credentials.user if credentials else None

    async def get(self, user_id: UUID) -> User:
        """Raises: NotFoundError."""
        user = await self._users.find(user_id)
        if user is None:
            raise NotFoundError("No such user.")
        return user

    async def update_profile(
        self,
        user_id: UUID,
        *,
        email: str | None,
        clear_email: bool = False,
        current_password: str | None = None,
    ) -> User:
        """Change the caller's own profile fields.

        Changing the address (or removing it) needs the current password: a stolen
        session must not be able to redirect the account's reset mails. A new address is
        not verified; setting the same address again (compared canonically) keeps its
        verification. A `current_password` that is sent is always checked, so a wrong one
        is a failed attempt even when nothing would change.

        Raises:
            InvalidEmailError: the new address is not valid.
            InvalidCredentialsError: the address changes and the current password is
                missing or wrong, or a wrong one was sent.
            EmailTakenError: another account has the address.
            NotFoundError: the user no longer exists.
        """
        address = canonical_email(email) if email is not None else None
        credentials = await self._users.find_credentials_by_id(user_id)
        if credentials is None:
            raise NotFoundError("No such user.")
        user = credentials.user
        if address is None and not clear_email:
            if current_password is not None:
                await self._check_password(credentials, current_password)
            return user
        changes = address is None or not _same_address(address[0], user.email)
        if changes and user.email is None and address is None:
            return user  # removing an address there is none of
        if changes or current_password is not None:
            await self._check_password(credentials, current_password)
        update = UserChanges(
            email=address[0] if address else None,
            email_canonical=address[1] if address else None,
            clear_email=address is None,
        )
        event = AuditEvent(
            type="email.changed",
            outcome="success",
            actor=Actor.user(user_id),
            subject=Subject("user", str(user_id)),
            detail={"removed": address is None},
        )
        if not changes:
            updated = await self._users.update(user_id, update, self._clock.now())
        else:
            with self._audit.staged(event):
                updated = await self._users.update(user_id, update, self._clock.now())
        if updated is None:
            raise NotFoundError("No such user.")
        return updated

    async def _check_password(self, credentials: UserCredentials, password: str | None) -> None:
        """Raises: InvalidCredentialsError when `password` is missing or not the user's."""
        if password is None or credentials.password_hash == NO_PASSWORD:
            raise InvalidCredentialsError
        try:
            normalised = normalise_password(password)
        except WeakPasswordError:
            raise InvalidCredentialsError from None
        matches, _ = await self._hasher.verify(normalised, credentials.password_hash)
        if not matches:
            raise InvalidCredentialsError

    async def change_password(
        self, user_id: UUID, current: str, new: str, *, keep_session: UUID | None
    ) -> None:
        """Replace the password after checking the current one; end every other session.

        Raises:
            InvalidCredentialsError: the current password is wrong.
            WeakPasswordError: the new password breaks the policy.
        """
        credentials = await self._users.find_credentials_by_id(user_id)
        if credentials is None:
            raise InvalidCredentialsError
        await self._check_password(credentials, current)
        normalised = check_new_password(new, username_canonical=credentials.user.username_canonical)
        new_hash = await self._hasher.hash(normalised)
        event = AuditEvent(
            type="password.changed",
            outcome="success",
            actor=Actor.user(user_id),
            subject=Subject("user", str(user_id)),
        )
        # A changed password must lock out whoever else holds a session, and end the live
        # reset links, in the same write.
        with self._audit.staged(event):
            await self._users.set_password_hash(
                user_id,
                new_hash,
                self._clock.now(),
                revoke_sessions=True,
                revoke_sessions_except=keep_session,
            )


def _login_event(kind: str, subject: Subject | None, reason: str) -> AuditEvent:
    return AuditEvent(
        type=kind,
        outcome="failure",
        actor=Actor.anonymous(),
        subject=subject,
        detail={"reason": reason},
    )


def _login_outcome(exc: GatehouseError) -> str:
    """The `outcome` label of `gatehouse_logins_total` for a login that did not succeed."""
    if isinstance(exc, AccountLockedError):
        return "locked"
    if isinstance(exc, RateLimitedError):
        return "rate_limited"
    if isinstance(exc, UnavailableError):
        return "overloaded" if isinstance(exc, OverloadedError) else "unavailable"
    if isinstance(exc, EmailUnverifiedError):
        return "email_unverified"
    return "failure"


def _same_address(new: str, stored: str | None) -> bool:
    """Whether the normalised address `new` is the stored one again, in other letter case
    at most (then no password is needed and the verification stays).

    Deliberately not the canonical (case-folded) comparison of the unique index: folding
    also joins addresses that are different mailboxes, `bob@straße.de` and `bob@strasse.de`
    (two domains under IDNA 2008) or a local part with the ligature `ﬁ` and one with `fi`.
    Swapping one for the other redirects the account's mail, so it is a change.
    """
    if stored is None:
        return False
    try:
        held = canonical_email(stored)[0]
    except InvalidEmailError:
        held = stored  # stored before addresses were validated: compared as it stands
    return new.lower() == held.lower()
