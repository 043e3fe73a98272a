"""The principal-invalidation log: how every process learns that a principal changed.

Repositories call `record` inside the transaction of any write that ends a session or
changes a user, and `publish` after it commits. `publish` tells listeners in this process
at once; other processes and hosts read the rows through `recent` (polled by the sessions
concern's watcher), so the log is the one channel that works on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from uuid import UUID

import sqlalchemy as sa

from gatehouse.server.sessions.repository import Invalidation
from gatehouse.server.storage.database import Connection, Database
from gatehouse.server.storage.tables import principal_invalidations

Listener = Callable[[Iterable[UUID]], None]


class InvalidationLog:
    def __init__(self, db: Database) -> None:
        self._db = db
        self._listeners: list[Listener] = []

    def subscribe(self, listener: Listener) -> None:
        self._listeners.append(listener)

    async def record(self, conn: Connection, user_ids: Iterable[UUID], now: datetime) -> None:
        rows = [{"user_id": uid, "created_at": now} for uid in set(user_ids)]
        if rows:
            await conn.execute(sa.insert(principal_invalidations), rows)

    def publish(self, user_ids: Iterable[UUID]) -> None:
        ids = set(user_ids)
        if ids:
            for listener in self._listeners:
                listener(ids)

    async def recent(self, since: datetime) -> list[Invalidation]:
        stmt = sa.select(
            principal_invalidations.c.seq,
            principal_invalidations.c.user_id,
            principal_invalidations.c.created_at,
        ).where(principal_invalidations.c.created_at >= since)
        async with self._db.read() as conn:
            rows = (await conn.execute(stmt)).all()
        return [Invalidation(seq=r.seq, user_id=r.user_id, created_at=r.created_at) for r in rows]

    async def prune(self, before: datetime) -> int:
        async with self._db.write() as conn:
            result = await conn.execute(
                sa.delete(principal_invalidations).where(
                    principal_invalidations.c.created_at < before
                )
            )
            return int(result.rowcount)
