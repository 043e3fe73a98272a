"""The session repository on SQLAlchemy Core."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

import sqlalchemy as sa

from gatehouse.server.accounts.models import User
from gatehouse.server.sessions.models import RefreshLookup, Session
from gatehouse.server.storage.database import Database
from gatehouse.server.storage.invalidations import InvalidationLog
from gatehouse.server.storage.tables import refresh_token_history, sessions, user_roles, users
from gatehouse.server.storage.users import USER_COLUMNS, revoke_user_sessions, users_from_rows

_SESSION_COLUMNS = (
    sessions.c.id.label("s_id"),
    sessions.c.user_id.label("s_user_id"),
    sessions.c.device_name,
    sessions.c.ip_address,
    sessions.c.user_agent,
    sessions.c.created_at.label("s_created_at"),
    sessions.c.last_used_at,
    sessions.c.expires_at,
    sessions.c.refresh_expires_at,
    sessions.c.revoked_at,
)


def _session(row: Any) -> Session:
    return Session(
        id=row.s_id,
        user_id=row.s_user_id,
        device_name=row.device_name,
        ip_address=row.ip_address,
        user_agent=row.user_agent,
        created_at=row.s_created_at,
        last_used_at=row.last_used_at,
        expires_at=row.expires_at,
        refresh_expires_at=row.refresh_expires_at,
        revoked_at=row.revoked_at,
    )


def _session_with_user() -> sa.Select[Any]:
    return (
        sa.select(*_SESSION_COLUMNS, *USER_COLUMNS, user_roles.c.role)
        .select_from(sessions)
        .join(users, users.c.id == sessions.c.user_id)
        .outerjoin(user_roles, user_roles.c.user_id == users.c.id)
    )


# The statements of login and refresh, built once: constructing a statement per call costs
# more CPU than SQLite takes to run it.
_INSERT_SESSION = sa.insert(sessions)
# What a session just opened stands on: its own revocation and its user as read.
_SESSION_STANDING = (
    sa.select(sessions.c.revoked_at, users.c.updated_at, users.c.is_active)
    .join(users, users.c.id == sessions.c.user_id)
    .where(sessions.c.id == sa.bindparam("sid", type_=sessions.c.id.type))
)
_SESSION_BY_REFRESH = _session_with_user().where(
    sessions.c.refresh_digest == sa.bindparam("digest")
)
_SESSION_BY_ROTATED_REFRESH = (
    _session_with_user()
    .join(refresh_token_history, refresh_token_history.c.session_id == sessions.c.id)
    .where(refresh_token_history.c.digest == sa.bindparam("digest"))
)
# Compare-and-swap: on PostgreSQL a concurrent UPDATE of the row waits, then re-checks the
# WHERE and matches nothing; SQLite serialises writers outright.
_SWAP_REFRESH = (
    sa.update(sessions)
    .where(
        sessions.c.id == sa.bindparam("session_id"),
        sessions.c.refresh_digest == sa.bindparam("old_digest"),
        sessions.c.revoked_at.is_(None),
    )
    .values(
        refresh_digest=sa.bindparam("new_digest"),
        last_used_at=sa.bindparam("now"),
        refresh_expires_at=sa.bindparam("refresh_expires_at"),
    )
)
_INSERT_ROTATED = sa.insert(refresh_token_history)
_NOW = sa.bindparam("now", type_=sessions.c.expires_at.type)
# Every request of a browser session reads this on a cache miss: built once.
_LIVE_COOKIE_SESSION = _session_with_user().where(
    sessions.c.cookie_digest == sa.bindparam("digest"),
    sessions.c.revoked_at.is_(None),
    sessions.c.expires_at > _NOW,
    sessions.c.refresh_expires_at > _NOW,
    users.c.is_active.is_(True),
)
_TOUCH = (
    sa.update(sessions)
    .where(
        sessions.c.id == sa.bindparam("session_id"),
        sessions.c.revoked_at.is_(None),
        sessions.c.last_used_at < sa.bindparam("not_since", type_=sessions.c.last_used_at.type),
    )
    .values(
        last_used_at=_NOW,
        refresh_expires_at=sa.bindparam("refresh_expires_at", type_=sessions.c.expires_at.type),
    )
)

# The live sessions of everyone, for the gauge read at scrape time (a few times a minute).
_COUNT_ACTIVE = (
    sa.select(sa.func.count())
    .select_from(sessions)
    .where(
        sessions.c.revoked_at.is_(None),
        sessions.c.refresh_expires_at > _NOW,
        sessions.c.expires_at > _NOW,
    )
)

# A session has ended once it is revoked or its refresh token expires (refresh_expires_at
# never exceeds the absolute expires_at). Both columns are indexed. Deletion goes in
# batches of bounded size: a long-lived session has one history row per refresh.
_ENDED = sa.or_(
    sessions.c.refresh_expires_at < sa.bindparam("before"),
    sessions.c.revoked_at < sa.bindparam("before"),
)
_LIMIT = sa.bindparam("limit", type_=sa.Integer())
_DELETE_ENDED_HISTORY = sa.delete(refresh_token_history).where(
    refresh_token_history.c.digest.in_(
        sa.select(refresh_token_history.c.digest)
        .join(sessions, sessions.c.id == refresh_token_history.c.session_id)
        .where(_ENDED)
        .limit(_LIMIT)
    )
)
# Run once no history of ended sessions is left, so the foreign key has nothing to cascade.
_DELETE_ENDED_SESSIONS = sa.delete(sessions).where(
    sessions.c.id.in_(sa.select(sessions.c.id).where(_ENDED).limit(_LIMIT))
)


class SqlSessionRepository:
    """Sessions and refresh-token history. Revocations record an invalidation."""

    def __init__(self, db: Database, invalidations: InvalidationLog) -> None:
        self._db = db
        self._log = invalidations
        # The hot path of every protected request: built once, compiled once.
        self._principal_query = (
            sa.select(*USER_COLUMNS, sessions.c.expires_at, user_roles.c.role)
            .select_from(sessions)
            .join(users, users.c.id == sessions.c.user_id)
            .outerjoin(user_roles, user_roles.c.user_id == users.c.id)
            .where(
                sessions.c.id == sa.bindparam("sid"),
                sessions.c.user_id == sa.bindparam("uid"),
                sessions.c.revoked_at.is_(None),
                sessions.c.expires_at > sa.bindparam("now", type_=sessions.c.expires_at.type),
                users.c.is_active.is_(True),
            )
        )

    async def create(
        self, session: Session, refresh_digest: bytes, cookie_digest: bytes | None = None
    ) -> None:
        row = {
            "cookie_digest": cookie_digest,
            "id": session.id,
            "user_id": session.user_id,
            "device_name": session.device_name,
            "ip_address": session.ip_address,
            "user_agent": session.user_agent,
            "created_at": session.created_at,
            "last_used_at": session.last_used_at,
            "expires_at": session.expires_at,
            "refresh_expires_at": session.refresh_expires_at,
            "refresh_digest": refresh_digest,
        }
        async with self._db.write() as conn:
            await conn.execute(_INSERT_SESSION, row)

    async def stands(self, session_id: UUID, *, user_as_of: datetime, now: datetime) -> bool:
        # Read after the insert committed: a change of the user committed before this read
        # is seen here, and one committed after it finds the session and revokes it itself.
        async with self._db.read() as conn:
            row = (await conn.execute(_SESSION_STANDING, {"sid": session_id})).first()
        if row is None:
            return False
        if row.revoked_at is None and row.is_active and row.updated_at == user_as_of:
            return True
        if row.revoked_at is None:
            async with self._db.write() as conn:
                await conn.execute(
                    sa.update(sessions)
                    .where(sessions.c.id == session_id, sessions.c.revoked_at.is_(None))
                    .values(revoked_at=now, revoked_reason="user_changed")
                )
        return False

    async def find_by_refresh(self, digest: bytes) -> RefreshLookup | None:
        params = {"digest": digest}
        async with self._db.read() as conn:
            rows = (await conn.execute(_SESSION_BY_REFRESH, params)).all()
            current = bool(rows)
            if not rows:
                rows = (await conn.execute(_SESSION_BY_ROTATED_REFRESH, params)).all()
        if not rows:
            return None
        return RefreshLookup(
            session=_session(rows[0]), user=users_from_rows(rows)[0], current=current
        )

    async def swap_refresh(
        self,
        session_id: UUID,
        old_digest: bytes,
        new_digest: bytes,
        *,
        now: datetime,
        refresh_expires_at: datetime,
    ) -> bool:
        async with self._db.write() as conn:
            result = await conn.execute(
                _SWAP_REFRESH,
                {
                    "session_id": session_id,
                    "old_digest": old_digest,
                    "new_digest": new_digest,
                    "now": now,
                    "refresh_expires_at": refresh_expires_at,
                },
            )
            if result.rowcount != 1:
                return False
            await conn.execute(
                _INSERT_ROTATED,
                {"digest": old_digest, "session_id": session_id, "rotated_at": now},
            )
            return True

    async def revoke(self, session_id: UUID, user_id: UUID, *, now: datetime, reason: str) -> bool:
        stmt = (
            sa.update(sessions)
            .where(
                sessions.c.id == session_id,
                sessions.c.user_id == user_id,
                sessions.c.revoked_at.is_(None),
            )
            .values(revoked_at=now, revoked_reason=reason)
        )
        async with self._db.write() as conn:
            revoked = bool((await conn.execute(stmt)).rowcount)
            if revoked:
                await self._log.record(conn, [user_id], now)
        if revoked:
            self._log.publish([user_id])
        return revoked

    async def revoke_all(
        self, user_id: UUID, *, now: datetime, reason: str, except_session: UUID | None = None
    ) -> int:
        async with self._db.write() as conn:
            count = await revoke_user_sessions(conn, user_id, now, reason, except_session)
            await self._log.record(conn, [user_id], now)
        self._log.publish([user_id])
        return count

    async def list_active(self, user_id: UUID, *, now: datetime) -> list[Session]:
        stmt = (
            sa.select(*_SESSION_COLUMNS)
            .where(
                sessions.c.user_id == user_id,
                sessions.c.revoked_at.is_(None),
                sessions.c.expires_at > now,
                sessions.c.refresh_expires_at > now,
            )
            .order_by(sessions.c.created_at.desc())
        )
        async with self._db.read() as conn:
            rows = (await conn.execute(stmt)).all()
        return [_session(row) for row in rows]

    async def count_active(self, *, now: datetime) -> int:
        async with self._db.read() as conn:
            count = (await conn.execute(_COUNT_ACTIVE, {"now": now})).scalar_one()
        return int(count)

    async def delete_ended(self, before: datetime, *, limit: int) -> int:
        params = {"before": before, "limit": limit}
        async with self._db.write() as conn:
            deleted = (await conn.execute(_DELETE_ENDED_HISTORY, params)).rowcount
            if not deleted:
                deleted = (await conn.execute(_DELETE_ENDED_SESSIONS, params)).rowcount
        return int(deleted)

    async def find_cookie_session(
        self, cookie_digest: bytes, *, now: datetime
    ) -> tuple[User, Session] | None:
        async with self._db.read() as conn:
            rows = (
                await conn.execute(_LIVE_COOKIE_SESSION, {"digest": cookie_digest, "now": now})
            ).all()
        found = users_from_rows(rows)
        return (found[0], _session(rows[0])) if found else None

    async def touch(
        self, session_id: UUID, *, now: datetime, refresh_expires_at: datetime, not_since: datetime
    ) -> None:
        async with self._db.write() as conn:
            await conn.execute(
                _TOUCH,
                {
                    "session_id": session_id,
                    "now": now,
                    "refresh_expires_at": refresh_expires_at,
                    "not_since": not_since,
                },
            )

    async def find_principal(
        self, session_id: UUID, user_id: UUID, *, now: datetime
    ) -> tuple[User, datetime] | None:
        async with self._db.read() as conn:
            rows = (
                await conn.execute(
                    self._principal_query, {"sid": session_id, "uid": user_id, "now": now}
                )
            ).all()
        found = users_from_rows(rows)
        return (found[0], rows[0].expires_at) if found else None
