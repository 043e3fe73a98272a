"""The signing-key repository on SQLAlchemy Core."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa

from gatehouse.server.storage.database import Database
from gatehouse.server.storage.tables import signing_keys
from gatehouse.server.tokens.repository import StoredKey


class SqlSigningKeyRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def list_keys(self) -> list[StoredKey]:
        async with self._db.read() as conn:
            rows = (await conn.execute(sa.select(signing_keys))).all()
        return [
            StoredKey(
                kid=row.kid,
                algorithm=row.algorithm,
                private_key_encrypted=row.private_key_encrypted,
                created_at=row.created_at,
                retires_at=row.retires_at,
            )
            for row in rows
        ]

    async def add(self, key: StoredKey, *, retire_others_at: datetime | None) -> None:
        async with self._db.write() as conn:
            if retire_others_at is not None:
                await conn.execute(
                    sa.update(signing_keys)
                    .where(signing_keys.c.retires_at.is_(None))
                    .values(retires_at=retire_others_at)
                )
            await conn.execute(
                sa.insert(signing_keys).values(
                    kid=key.kid,
                    algorithm=key.algorithm,
                    private_key_encrypted=key.private_key_encrypted,
                    created_at=key.created_at,
                    retires_at=key.retires_at,
                )
            )
