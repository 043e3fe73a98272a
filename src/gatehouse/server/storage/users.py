"""The user repository on SQLAlchemy Core."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from gatehouse.server.accounts.models import NewUser, User, UserChanges, UserCredentials
from gatehouse.server.errors import EmailTakenError, UsernameTakenError
from gatehouse.server.storage.database import Connection, Database
from gatehouse.server.storage.invalidations import InvalidationLog
from gatehouse.server.storage.tables import account_tokens, sessions, user_roles, users

USER_COLUMNS = (
    users.c.id,
    users.c.username,
    users.c.username_canonical,
    users.c.email,
    users.c.is_active,
    users.c.created_at,
    users.c.updated_at,
    users.c.is_service_account,
    users.c.email_verified,
)


def users_from_rows(rows: Iterable[Any]) -> list[User]:
    """Fold rows of (user columns..., role) from a LEFT JOIN on user_roles into users."""
    order: list[UUID] = []
    fields: dict[UUID, Any] = {}
    roles: dict[UUID, set[str]] = {}
    for row in rows:
        if row.id not in fields:
            order.append(row.id)
            fields[row.id] = row
            roles[row.id] = set()
        if row.role is not None:
            roles[row.id].add(row.role)
    return [_user(fields[uid], roles[uid]) for uid in order]


def _user(row: Any, roles: set[str]) -> User:
    return User(
        id=row.id,
        username=row.username,
        username_canonical=row.username_canonical,
        email=row.email,
        roles=frozenset(roles),
        is_active=row.is_active,
        created_at=row.created_at,
        updated_at=row.updated_at,
        is_service_account=row.is_service_account,
        email_verified=row.email_verified,
    )


def _with_roles(*extra: Any) -> sa.Select[Any]:
    return sa.select(*USER_COLUMNS, *extra, user_roles.c.role).outerjoin(
        user_roles, user_roles.c.user_id == users.c.id
    )


# Every login reads one of these: built once, so each call skips statement construction.
_CREDENTIALS_BY_NAME = _with_roles(users.c.password_hash).where(
    users.c.username_canonical == sa.bindparam("name")
)
_CREDENTIALS_BY_ID = _with_roles(users.c.password_hash).where(
    users.c.id == sa.bindparam("id", type_=users.c.id.type)
)


def taken_error(exc: IntegrityError) -> EmailTakenError | UsernameTakenError:
    """Which unique index refused an insert or update of a user: both engines name the
    column (SQLite) or the constraint `uq_users_email_canonical` (PostgreSQL)."""
    if "email_canonical" in str(exc.orig):
        return EmailTakenError()
    return UsernameTakenError()


async def end_reset_tokens(conn: Connection, user_id: UUID, now: datetime) -> None:
    """End the user's live password-reset tokens inside `conn`'s transaction (after a
    password or address change, a link mailed before it must not work)."""
    await conn.execute(
        sa.update(account_tokens)
        .where(
            account_tokens.c.user_id == user_id,
            account_tokens.c.purpose == "reset",
            account_tokens.c.used_at.is_(None),
        )
        .values(used_at=now)
    )


async def revoke_user_sessions(
    conn: Connection, user_id: UUID, now: datetime, reason: str, except_session: UUID | None
) -> int:
    stmt = (
        sa.update(sessions)
        .where(sessions.c.user_id == user_id, sessions.c.revoked_at.is_(None))
        .values(revoked_at=now, revoked_reason=reason)
    )
    if except_session is not None:
        stmt = stmt.where(sessions.c.id != except_session)
    result = await conn.execute(stmt)
    return int(result.rowcount)


class SqlUserRepository:
    """Users and roles. Writes that change a user record an invalidation (see invalidations)."""

    def __init__(self, db: Database, invalidations: InvalidationLog) -> None:
        self._db = db
        self._log = invalidations

    async def add(self, new: NewUser) -> User:
        try:
            async with self._db.write() as conn:
                await conn.execute(
                    sa.insert(users).values(
                        id=new.id,
                        username=new.username,
                        username_canonical=new.username_canonical,
                        email=new.email,
                        password_hash=new.password_hash,
                        is_active=True,
                        created_at=new.created_at,
                        updated_at=new.created_at,
                        is_service_account=new.is_service_account,
                        email_canonical=new.email_canonical,
                        email_verified=False,
                    )
                )
                await _insert_roles(conn, new.id, new.roles)
        except IntegrityError as exc:
            raise taken_error(exc) from exc
        return User(
            id=new.id,
            username=new.username,
            username_canonical=new.username_canonical,
            email=new.email,
            roles=new.roles,
            is_active=True,
            created_at=new.created_at,
            updated_at=new.created_at,
            is_service_account=new.is_service_account,
            email_verified=False,
        )

    async def find(self, user_id: UUID) -> User | None:
        async with self._db.read() as conn:
            return await _find(conn, user_id)

    async def find_credentials(self, username_canonical: str) -> UserCredentials | None:
        return await self._credentials(_CREDENTIALS_BY_NAME, {"name": username_canonical})

    async def find_credentials_by_id(self, user_id: UUID) -> UserCredentials | None:
        return await self._credentials(_CREDENTIALS_BY_ID, {"id": user_id})

    async def find_by_email(self, email_canonical: str) -> User | None:
        async with self._db.read() as conn:
            rows = (
                await conn.execute(_with_roles().where(users.c.email_canonical == email_canonical))
            ).all()
        found = users_from_rows(rows)
        return found[0] if found else None

    async def _credentials(
        self, query: sa.Select[Any], params: dict[str, Any]
    ) -> UserCredentials | None:
        async with self._db.read() as conn:
            rows = (await conn.execute(query, params)).all()
        found = users_from_rows(rows)
        if not found:
            return None
        return UserCredentials(user=found[0], password_hash=rows[0].password_hash)

    async def update(self, user_id: UUID, changes: UserChanges, now: datetime) -> User | None:
        values: dict[str, Any] = {"updated_at": now}
        new_address = changes.email is not None or changes.clear_email
        if new_address:
            if changes.clear_email:
                values.update(email=None, email_canonical=None)
            elif changes.email_canonical is None:
                raise ValueError("a new email comes with its canonical form")
            else:
                values.update(email=changes.email, email_canonical=changes.email_canonical)
        if changes.is_active is not None:
            values["is_active"] = changes.is_active
        try:
            async with self._db.write() as conn:
                if new_address:
                    held = (
                        await conn.execute(
                            sa.select(users.c.email, users.c.email_canonical)
                            .where(users.c.id == user_id)
                            .with_for_update()
                        )
                    ).first()
                    if held is None:
                        return None
                    if not _same_address(held, values["email"], values["email_canonical"]):
                        # Another address: not verified, and reset links mailed to the
                        # old one stop working. The same address keeps its verification.
                        values["email_verified"] = False
                        await end_reset_tokens(conn, user_id, now)
                result = await conn.execute(
                    sa.update(users).where(users.c.id == user_id).values(values)
                )
                if result.rowcount == 0:
                    return None
                if changes.roles is not None:
                    await conn.execute(sa.delete(user_roles).where(user_roles.c.user_id == user_id))
                    await _insert_roles(conn, user_id, changes.roles)
                if changes.is_active is False:
                    # Deactivation ends every session in the same transaction.
                    await revoke_user_sessions(conn, user_id, now, "user_deactivated", None)
                await self._log.record(conn, [user_id], now)
                user = await _find(conn, user_id)
        except IntegrityError as exc:
            # The only unique column an update can collide on is the address.
            raise EmailTakenError from exc
        self._log.publish([user_id])
        return user

    async def set_password_hash(
        self,
        user_id: UUID,
        password_hash: str,
        now: datetime,
        *,
        revoke_sessions_except: UUID | None = None,
        revoke_sessions: bool = False,
        replacing: str | None = None,
    ) -> None:
        change = sa.update(users).where(users.c.id == user_id)
        if replacing is None:
            change = change.values(password_hash=password_hash, updated_at=now)
        else:
            # A re-hash replaces only the hash it was computed from (a password changed or
            # reset meanwhile is never put back), and is no change of the user: the login
            # that made it opens its session on the user as read (SessionService.open).
            change = change.where(users.c.password_hash == replacing).values(
                password_hash=password_hash
            )
        async with self._db.write() as conn:
            await conn.execute(change)
            if revoke_sessions:
                await revoke_user_sessions(
                    conn, user_id, now, "password_changed", revoke_sessions_except
                )
                # A password change, not a re-hash: reset links mailed before it end.
                await end_reset_tokens(conn, user_id, now)
                await self._log.record(conn, [user_id], now)
        if revoke_sessions:
            self._log.publish([user_id])

    async def list(
        self, *, prefix: str | None, role: str | None, limit: int, after: str | None
    ) -> list[User]:
        page = sa.select(users.c.id).order_by(users.c.username_canonical).limit(limit)
        if prefix:
            page = page.where(users.c.username_canonical.startswith(prefix, autoescape=True))
        if after is not None:
            page = page.where(users.c.username_canonical > after)
        if role is not None:
            page = page.where(
                sa.exists().where(user_roles.c.user_id == users.c.id, user_roles.c.role == role)
            )
        async with self._db.read() as conn:
            ids = (await conn.execute(page)).scalars().all()
            if not ids:
                return []
            rows = (
                await conn.execute(
                    _with_roles().where(users.c.id.in_(ids)).order_by(users.c.username_canonical)
                )
            ).all()
        return users_from_rows(rows)

    async def delete(self, user_id: UUID, now: datetime) -> bool:
        async with self._db.write() as conn:
            result = await conn.execute(sa.delete(users).where(users.c.id == user_id))
            await self._log.record(conn, [user_id], now)
        self._log.publish([user_id])
        return bool(result.rowcount)


def _same_address(held: Any, email: str | None, email_canonical: str | None) -> bool:
    """Whether a user's new address is the one held, in other letter case at most.

    The canonical forms must match (the claim on the address stays), and so must the
    texts up to case: case folding alone also joins different mailboxes (`straße.de` and
    `strasse.de` are two domains), whose verification must not carry over.
    """
    if email is None or held.email is None or held.email_canonical is None:
        return False
    return bool(held.email_canonical == email_canonical and held.email.lower() == email.lower())


async def _find(conn: Connection, user_id: UUID) -> User | None:
    rows = (await conn.execute(_with_roles().where(users.c.id == user_id))).all()
    found = users_from_rows(rows)
    return found[0] if found else None


async def _insert_roles(
    conn: Connection, user_id: UUID, roles: Sequence[str] | frozenset[str]
) -> None:
    if roles:
        await conn.execute(
            sa.insert(user_roles), [{"user_id": user_id, "role": role} for role in sorted(roles)]
        )
