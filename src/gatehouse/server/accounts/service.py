"""Self-service account use cases: register, authenticate, update profile, change password."""

from __future__ import annotations

import uuid
from uuid import UUID

from gatehouse.server.accounts.models import NO_PASSWORD, USER_ROLE, NewUser, User, UserChanges
from gatehouse.server.accounts.names import canonical_username
from gatehouse.server.accounts.passwords import (
    PasswordHasher,
    check_new_password,
    normalise_password,
)
from gatehouse.server.accounts.repository import UserRepository
from gatehouse.server.audit.models import AuditRecorder
from gatehouse.server.clock import Clock
from gatehouse.server.errors import (
    InvalidCredentialsError,
    InvalidUsernameError,
    NotFoundError,
    WeakPasswordError,
)


class AccountService:
    """Accounts as their owners use them."""

    def __init__(
        self,
        *,
        users: UserRepository,
        hasher: PasswordHasher,
        audit: AuditRecorder,
        clock: Clock,
    ) -> None:
        self._users = users
        self._hasher = hasher
        self._audit = audit
        self._clock = clock

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
            UsernameTakenError: the canonical username exists (also under a race: the
                unique index decides, so two registrations at once make one account).
        """
        display, canonical = canonical_username(username)
        normalised = check_new_password(password, username_canonical=canonical)
        password_hash = await self._hasher.hash(normalised)
        return await self._add(display, canonical, email, password_hash, roles)

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
        email: str | None,
        password_hash: str,
        roles: frozenset[str],
        *,
        service: bool = False,
    ) -> User:
        return await self._users.add(
            NewUser(
                id=uuid.uuid4(),
                username=display,
                username_canonical=canonical,
                email=email,
                password_hash=password_hash,
                roles=roles,
                created_at=self._clock.now(),
                is_service_account=service,
            )
        )

    async def authenticate(self, username: str, password: str) -> User:
        """Check a username and password and return the active user.

        Raises:
            InvalidCredentialsError: unknown user, wrong password or inactive user, alike.
        """
        # Step 1: names and passwords that cannot be valid still cost one hash, so that a
        # malformed attempt is not faster than a wrong one.
        try:
            _, canonical = canonical_username(username)
            normalised = normalise_password(password)
        except (InvalidUsernameError, WeakPasswordError):
            await self._hasher.burn(password[:256])
            raise InvalidCredentialsError from None

        # Step 2: an unknown user is checked against a dummy hash, for equal timing.
        credentials = await self._users.find_credentials(canonical)
        if credentials is None:
            await self._hasher.burn(normalised)
            raise InvalidCredentialsError

        # Step 3: a service account has no password: it fails like an unknown user.
        if credentials.password_hash == NO_PASSWORD:
            await self._hasher.burn(normalised)
            raise InvalidCredentialsError

        # Step 4: verify; an inactive user fails only after the hash, with the same error.
        matches, new_hash = await self._hasher.verify(normalised, credentials.password_hash)
        if not matches or not credentials.user.is_active:
            raise InvalidCredentialsError

        # Step 5: an outdated hash (bcrypt, older argon2 parameters) is upgraded now, while
        # the plain password is at hand.
        if new_hash is not None:
            await self._users.set_password_hash(credentials.user.id, new_hash, self._clock.now())
        return credentials.user

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
        self, user_id: UUID, *, email: str | None, clear_email: bool = False
    ) -> User:
        """Change the caller's own profile fields.

        Raises:
            NotFoundError: the user no longer exists.
        """
        user = await self._users.update(
            user_id, UserChanges(email=email, clear_email=clear_email), self._clock.now()
        )
        if user is None:
            raise NotFoundError("No such user.")
        return user

    async def change_password(
        self, user_id: UUID, current: str, new: str, *, keep_session: UUID | None
    ) -> None:
        """Replace the password after checking the current one; end every other session.

        Raises:
            InvalidCredentialsError: the current password is wrong.
            WeakPasswordError: the new password breaks the policy.
        """
        credentials = await self._users.find_credentials_by_id(user_id)
        if credentials is None or credentials.password_hash == NO_PASSWORD:
            raise InvalidCredentialsError
        try:
            current_normalised = normalise_password(current)
        except WeakPasswordError:
            raise InvalidCredentialsError from None
        matches, _ = await self._hasher.verify(current_normalised, credentials.password_hash)
        if not matches:
            raise InvalidCredentialsError
        normalised = check_new_password(new, username_canonical=credentials.user.username_canonical)
        new_hash = await self._hasher.hash(normalised)
        # A changed password must lock out whoever else holds a session, in the same write.
        await self._users.set_password_hash(
            user_id,
            new_hash,
            self._clock.now(),
            revoke_sessions=True,
            revoke_sessions_except=keep_session,
        )
