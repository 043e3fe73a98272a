"""The principal-invalidation log: how every process learns that a principal changed.

Repositories call `record` inside the transaction of any write that ends a session or
changes a user, and `publish` after it commits. `publish` tells listeners in this process
at once; other processes and hosts read the rows through `recent` (polled by the sessions
concern's watcher), so the log is the one channel that works on SQLite and PostgreSQL alike.

On PostgreSQL, `record` also sends a NOTIFY in the same transaction (delivered only if it
commits), which `listen` hands to the watcher of every other process within milliseconds.
That is an accelerator: the poll stays, so a missed notification costs one poll interval.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from datetime import datetime
from uuid import UUID

import sqlalchemy as sa

from gatehouse.server.sessions.repository import Invalidation
from gatehouse.server.storage.database import Connection, Database
from gatehouse.server.storage.tables import principal_invalidations

Listener = Callable[[Iterable[UUID]], None]

log = logging.getLogger("gatehouse")

CHANNEL = "gatehouse_invalidations"
# PostgreSQL refuses payloads of 8000 bytes or more; a bigger batch is left to the poll.
_MAX_NOTIFY_PAYLOAD = 7000
_NOTIFY = sa.select(sa.func.pg_notify(sa.bindparam("channel"), sa.bindparam("payload")))


class InvalidationLog:
    def __init__(self, db: Database) -> None:
        self._db = db
        self._listeners: list[Listener] = []

    def subscribe(self, listener: Listener) -> None:
        self._listeners.append(listener)

    async def record(self, conn: Connection, user_ids: Iterable[UUID], now: datetime) -> None:
        ids = set(user_ids)
        if not ids:
            return
        rows = [{"user_id": uid, "created_at": now} for uid in ids]
        await conn.execute(sa.insert(principal_invalidations), rows)
        if not self._db.can_listen:
            return
        payload = ",".join(str(uid) for uid in ids)
        if len(payload) <= _MAX_NOTIFY_PAYLOAD:
            await conn.execute(_NOTIFY, {"channel": CHANNEL, "payload": payload})

    async def listen(
        self, on_invalidated: Callable[[set[UUID]], None], ready: Callable[[], None]
    ) -> None:
        """Call `on_invalidated` with the users of every invalidation any process commits,
        until cancelled; `ready` once listening. Returns at once on SQLite.

        Raises:
            StorageUnavailableError: no connection, or it was lost.
        """

        def on_message(payload: str) -> None:
            ids = set()
            for part in payload.split(","):
                try:
                    ids.add(UUID(part))
                except ValueError:
                    log.warning("ignored a malformed invalidation notification")
            if ids:
                on_invalidated(ids)

        await self._db.listen(CHANNEL, on_message, ready)

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
