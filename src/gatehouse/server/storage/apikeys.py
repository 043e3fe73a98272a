"""The API key repository on SQLAlchemy Core."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

import sqlalchemy as sa

from gatehouse.server.apikeys.models import ApiKey, ApiKeyLookup
from gatehouse.server.storage.database import Database
from gatehouse.server.storage.invalidations import InvalidationLog
from gatehouse.server.storage.paging import after_clause
from gatehouse.server.storage.tables import api_keys, user_roles, users
from gatehouse.server.storage.users import USER_COLUMNS, users_from_rows

_KEY_COLUMNS = (
    api_keys.c.id.label("k_id"),
    api_keys.c.public_id,
    api_keys.c.owner_id,
    api_keys.c.name,
    api_keys.c.scopes,
    api_keys.c.created_at.label("k_created_at"),
    api_keys.c.last_used_at,
    api_keys.c.expires_at,
    api_keys.c.revoked_at,
)

# The lookup of every request authenticated by a key (on a cache miss): built once.
_BY_PUBLIC_ID = (
    sa.select(*_KEY_COLUMNS, api_keys.c.digest, *USER_COLUMNS, user_roles.c.role)
    .select_from(api_keys)
    .join(users, users.c.id == api_keys.c.owner_id)
    .outerjoin(user_roles, user_roles.c.user_id == users.c.id)
    .where(api_keys.c.public_id == sa.bindparam("public_id"))
)
_TOUCH = (
    sa.update(api_keys)
    .where(
        api_keys.c.id == sa.bindparam("key_id"),
        sa.or_(
            api_keys.c.last_used_at.is_(None),
            api_keys.c.last_used_at < sa.bindparam("not_since", type_=api_keys.c.last_used_at.type),
        ),
    )
    .values(last_used_at=sa.bindparam("now", type_=api_keys.c.last_used_at.type))
)


def _key(row: Any) -> ApiKey:
    return ApiKey(
        id=row.k_id,
        public_id=row.public_id,
        owner_id=row.owner_id,
        name=row.name,
        scopes=frozenset(row.scopes.split()),
        created_at=row.k_created_at,
        last_used_at=row.last_used_at,
        expires_at=row.expires_at,
        revoked_at=row.revoked_at,
    )


class SqlApiKeyRepository:
    """API keys. Revoking one records an invalidation for its owner."""

    def __init__(self, db: Database, invalidations: InvalidationLog) -> None:
        self._db = db
        self._log = invalidations

    async def add(self, key: ApiKey, digest: bytes) -> None:
        async with self._db.write() as conn:
            await conn.execute(
                sa.insert(api_keys).values(
                    id=key.id,
                    public_id=key.public_id,
                    owner_id=key.owner_id,
                    name=key.name,
                    scopes=" ".join(sorted(key.scopes)),
                    digest=digest,
                    created_at=key.created_at,
                    last_used_at=key.last_used_at,
                    expires_at=key.expires_at,
                )
            )

    async def find_by_public_id(self, public_id: str) -> ApiKeyLookup | None:
        async with self._db.read() as conn:
            rows = (await conn.execute(_BY_PUBLIC_ID, {"public_id": public_id})).all()
        if not rows:
            return None
        owner = users_from_rows(rows)[0]
        return ApiKeyLookup(record=_key(rows[0]), digest=rows[0].digest, owner=owner)

    async def get(self, key_id: UUID, *, owner_id: UUID) -> ApiKey | None:
        stmt = sa.select(*_KEY_COLUMNS).where(
            api_keys.c.id == key_id,
            api_keys.c.owner_id == owner_id,
            api_keys.c.revoked_at.is_(None),
        )
        async with self._db.read() as conn:
            row = (await conn.execute(stmt)).one_or_none()
        return _key(row) if row is not None else None

    async def list(
        self, *, owner_id: UUID | None, limit: int, after: tuple[datetime, UUID] | None
    ) -> list[ApiKey]:
        stmt = (
            sa.select(*_KEY_COLUMNS)
            .where(api_keys.c.revoked_at.is_(None))
            .order_by(api_keys.c.created_at, api_keys.c.id)
            .limit(limit)
        )
        if owner_id is not None:
            stmt = stmt.where(api_keys.c.owner_id == owner_id)
        if after is not None:
            stmt = stmt.where(after_clause(api_keys.c.created_at, api_keys.c.id, after))
        async with self._db.read() as conn:
            rows = (await conn.execute(stmt)).all()
        return [_key(row) for row in rows]

    async def revoke(self, key_id: UUID, *, owner_id: UUID | None, now: datetime) -> bool:
        stmt = (
            sa.update(api_keys)
            .where(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None))
            .values(revoked_at=now)
            .returning(api_keys.c.owner_id)
        )
        if owner_id is not None:
            stmt = stmt.where(api_keys.c.owner_id == owner_id)
        async with self._db.write() as conn:
            owner = (await conn.execute(stmt)).scalar_one_or_none()
            if owner is not None:
                await self._log.record(conn, [owner], now)
        if owner is None:
            return False
        self._log.publish([owner])
        return True

    async def touch(self, key_id: UUID, *, now: datetime, not_since: datetime) -> None:
        async with self._db.write() as conn:
            await conn.execute(_TOUCH, {"key_id": key_id, "now": now, "not_since": not_since})
