"""Account administration: list, create, change and delete users (admin role only).

Authorisation (is the caller an admin?) is checked by the HTTP layer's dependency; this
service guards against self-lockout: an admin cannot deactivate, delete or demote themself.
"""

from __future__ import annotations

from uuid import UUID

from gatehouse.server.accounts.models import ADMIN_ROLE, User, UserChanges, UserPage
from gatehouse.server.accounts.names import canonical_roles, canonical_username
from gatehouse.server.accounts.repository import UserRepository
from gatehouse.server.accounts.service import AccountService
from gatehouse.server.clock import Clock
from gatehouse.server.errors import NotFoundError, SelfLockoutError
from gatehouse.server.pagination import decode_cursor, encode_cursor


class AdminService:
    """What admins do to other accounts."""

    def __init__(self, *, users: UserRepository, accounts: AccountService, clock: Clock) -> None:
        self._users = users
        self._accounts = accounts
        self._clock = clock

    async def list_users(
        self,
        *,
        prefix: str | None = None,
        role: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> UserPage:
        """One page of users in canonical-username order.

        Raises:
            InvalidInputError: the cursor, prefix or role filter is malformed.
        """
        canonical_prefix = canonical_username(prefix)[1] if prefix else None
        if role is not None:
            canonical_roles({role})
        after = decode_cursor(cursor) if cursor else None
        users = await self._users.list(
            prefix=canonical_prefix, role=role, limit=limit + 1, after=after
        )
        next_cursor = (
            encode_cursor(users[limit - 1].username_canonical) if len(users) > limit else None
        )
        return UserPage(items=users[:limit], next_cursor=next_cursor)

    async def create_user(
        self, username: str, password: str, *, email: str | None, roles: frozenset[str]
    ) -> User:
        """Raises: InvalidInputError subclasses, UsernameTakenError."""
        return await self._accounts.register(
            username, password, email=email, roles=canonical_roles(roles)
        )

    async def create_service_account(self, username: str, *, roles: frozenset[str]) -> User:
        """Raises: InvalidUsernameError, InvalidRoleError, UsernameTakenError."""
        return await self._accounts.create_service_account(username, roles=canonical_roles(roles))

    async def get_user(self, user_id: UUID) -> User:
        """Raises: NotFoundError."""
        return await self._accounts.get(user_id)

    async def update_user(self, actor: User | None, user_id: UUID, changes: UserChanges) -> User:
        """Change roles, active flag or email. Deactivating ends every session of the user.

        `actor` is the admin making the change, or None for the operator at the CLI.

        Raises:
            NotFoundError: no such user.
            SelfLockoutError: the admin would deactivate or demote themself.
            InvalidRoleError: a role name is malformed.
        """
        if changes.roles is not None:
            changes = UserChanges(
                email=changes.email,
                clear_email=changes.clear_email,
                roles=canonical_roles(changes.roles),
                is_active=changes.is_active,
            )
        if (
            actor is not None
            and user_id == actor.id
            and (
                changes.is_active is False
                or (changes.roles is not None and ADMIN_ROLE not in changes.roles)
            )
        ):
            raise SelfLockoutError
        user = await self._users.update(user_id, changes, self._clock.now())
        if user is None:
            raise NotFoundError("No such user.")
        return user

    async def delete_user(self, actor: User, user_id: UUID) -> None:
        """Delete a user with their sessions.

        Raises:
            NotFoundError: no such user.
            SelfLockoutError: the admin would delete themself.
        """
        if user_id == actor.id:
            raise SelfLockoutError
        if not await self._users.delete(user_id, self._clock.now()):
            raise NotFoundError("No such user.")
