"""Account administration: list, create, change and delete users (admin role only).

Authorisation (is the caller an admin?) is checked by the HTTP layer's dependency; this
service guards against self-lockout: an admin cannot deactivate, delete or demote themself.

Every change is recorded in the audit trail in its own transaction (`user.created`,
`user.roles_changed`, `user.deactivated`, `user.activated`, `email.changed`,
`user.deleted`), with the admin as actor, or the operator at the CLI (`actor` None).
"""

from __future__ import annotations

import dataclasses
from uuid import UUID

from gatehouse.server.accounts.emails import canonical_email
from gatehouse.server.accounts.models import ADMIN_ROLE, User, UserChanges, UserPage
from gatehouse.server.accounts.names import canonical_roles, canonical_username
from gatehouse.server.accounts.repository import UserRepository
from gatehouse.server.accounts.service import AccountService
from gatehouse.server.audit.models import Actor, AuditEvent, AuditRecorder, Detail, Subject
from gatehouse.server.clock import Clock
from gatehouse.server.errors import NotFoundError, SelfLockoutError
from gatehouse.server.pagination import decode_cursor, encode_cursor


class AdminService:
    """What admins do to other accounts."""

    def __init__(
        self,
        *,
        users: UserRepository,
        accounts: AccountService,
        audit: AuditRecorder,
        clock: Clock,
    ) -> None:
        self._users = users
        self._accounts = accounts
        self._audit = audit
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
        self,
        username: str,
        password: str,
        *,
        email: str | None,
        roles: frozenset[str],
        by: User | None = None,
    ) -> User:
        """`by` is the admin creating the user (None: the operator at the CLI).

        Raises: InvalidInputError subclasses, UsernameTakenError, EmailTakenError.
        """
        granted = canonical_roles(roles)
        with self._audit.staged(self._created(username, granted, by, service=False)):
            return await self._accounts.register(username, password, email=email, roles=granted)

    async def create_service_account(
        self, username: str, *, roles: frozenset[str], by: User | None = None
    ) -> User:
        """Raises: InvalidUsernameError, InvalidRoleError, UsernameTakenError."""
        granted = canonical_roles(roles)
        with self._audit.staged(self._created(username, granted, by, service=True)):
            return await self._accounts.create_service_account(username, roles=granted)

    def _created(
        self, username: str, roles: frozenset[str], by: User | None, *, service: bool
    ) -> AuditEvent:
        # The user's id is drawn inside the account service's write, so this event names
        # the account by its canonical username; `user.registered`, written in the same
        # transaction, carries the id.
        _, canonical = canonical_username(username)
        return AuditEvent(
            type="user.created",
            outcome="success",
            actor=_actor(by),
            subject=Subject("username", canonical),
            detail={"roles": " ".join(sorted(roles)), "service_account": service},
        )

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
            InvalidEmailError: the new address is not valid.
            EmailTakenError: another account has the address (a new address is unverified).
        """
        if changes.email is not None:
            email, email_canonical = canonical_email(changes.email)
            changes = dataclasses.replace(changes, email=email, email_canonical=email_canonical)
        if changes.roles is not None:
            changes = dataclasses.replace(changes, roles=canonical_roles(changes.roles))
        if (
            actor is not None
            and user_id == actor.id
            and (
                changes.is_active is False
                or (changes.roles is not None and ADMIN_ROLE not in changes.roles)
            )
        ):
            raise SelfLockoutError
        before = await self._users.find(user_id)
        if before is None:
            raise NotFoundError("No such user.")
        events = _change_events(before, changes, _actor(actor))
        with self._audit.staged(*events):
            user = await self._users.update(user_id, changes, self._clock.now())
            if user is None:  # deleted meanwhile: nothing changed, nothing is recorded
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
        before = await self._users.find(user_id)
        if before is None:
            raise NotFoundError("No such user.")
        event = AuditEvent(
            type="user.deleted",
            outcome="success",
            actor=_actor(actor),
            subject=Subject("user", str(user_id)),
            detail={"username": before.username_canonical},
        )
        with self._audit.staged(event):
            if not await self._users.delete(user_id, self._clock.now()):
                raise NotFoundError("No such user.")


def _actor(admin: User | None) -> Actor:
    return Actor.user(admin.id) if admin is not None else Actor.cli()


def _change_events(before: User, changes: UserChanges, actor: Actor) -> list[AuditEvent]:
    """One event per field an admin's change really changes."""
    subject = Subject("user", str(before.id))
    found: list[tuple[str, Detail]] = []
    if changes.roles is not None and changes.roles != before.roles:
        found.append(
            (
                "user.roles_changed",
                {
                    "roles": " ".join(sorted(changes.roles)),
                    "previous": " ".join(sorted(before.roles)),
                },
            )
        )
    if changes.is_active is not None and changes.is_active != before.is_active:
        found.append(("user.activated" if changes.is_active else "user.deactivated", {}))
    if changes.clear_email and before.email is not None:
        found.append(("email.changed", {"removed": True, "by_admin": True}))
    elif changes.email is not None and changes.email != before.email:
        found.append(("email.changed", {"removed": False, "by_admin": True}))
    return [
        AuditEvent(type=kind, outcome="success", actor=actor, subject=subject, detail=detail)
        for kind, detail in found
    ]
