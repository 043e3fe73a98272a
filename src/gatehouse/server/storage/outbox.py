"""The mail outbox on SQLAlchemy Core (`mail_outbox`): see `mail/outbox.py` for the design.

Claiming is a compare-and-swap on `next_attempt_at`: `UPDATE ... SET next_attempt_at =
lease WHERE id = ? AND next_attempt_at = <the value read>`. On PostgreSQL a second worker's
UPDATE waits for the first's row lock and then finds the WHERE no longer true (0 rows);
on SQLite writers are serialised. Either way exactly one worker holds an item, and every
later change to it is conditional on its lease.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa

from gatehouse.server.mail.models import ClaimedItem, NewOutboxItem
from gatehouse.server.storage.database import Connection, Database
from gatehouse.server.storage.tables import mail_outbox

# Due items looked at per claim; more than one, so a race lost on the first is not a miss.
_CANDIDATES = 8
_ERROR_MAX = 200

_DUE = (
    sa.select(
        mail_outbox.c.id,
        mail_outbox.c.kind,
        mail_outbox.c.payload,
        mail_outbox.c.created_at,
        mail_outbox.c.expires_at,
        mail_outbox.c.attempts,
        mail_outbox.c.next_attempt_at,
    )
    .where(
        mail_outbox.c.next_attempt_at <= sa.bindparam("now", type_=mail_outbox.c.created_at.type)
    )
    .order_by(mail_outbox.c.next_attempt_at, mail_outbox.c.id)
    .limit(_CANDIDATES)
)


def outbox_values(item: NewOutboxItem) -> dict[str, Any]:
    """The row of a new item, for inserting it here or in another repository's transaction."""
    return {
        "id": item.id,
        "kind": item.kind,
        "payload": item.payload,
        "created_at": item.created_at,
        "next_attempt_at": item.next_attempt_at,
        "attempts": 0,
        "expires_at": item.expires_at,
    }


async def finish_item(conn: Connection, item: ClaimedItem) -> bool:
    """Delete a held item inside `conn`'s transaction; False when its lease was lost."""
    result = await conn.execute(
        sa.delete(mail_outbox).where(
            mail_outbox.c.id == item.id, mail_outbox.c.next_attempt_at == item.lease
        )
    )
    return bool(result.rowcount)


class SqlOutboxRepository:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def add(self, item: NewOutboxItem) -> None:
        async with self._db.write() as conn:
            await conn.execute(sa.insert(mail_outbox).values(outbox_values(item)))

    async def claim_next(self, now: datetime, lease: datetime) -> ClaimedItem | None:
        # A read first: an idle outbox (the usual case, polled every second by every
        # process) costs no write transaction.
        async with self._db.read() as conn:
            if not (await conn.execute(_DUE, {"now": now})).first():
                return None
        async with self._db.write() as conn:
            for row in (await conn.execute(_DUE, {"now": now})).all():
                taken = await conn.execute(
                    sa.update(mail_outbox)
                    .where(
                        mail_outbox.c.id == row.id,
                        mail_outbox.c.next_attempt_at == row.next_attempt_at,
                    )
                    .values(next_attempt_at=lease, attempts=mail_outbox.c.attempts + 1)
                )
                if taken.rowcount:
                    return ClaimedItem(
                        id=row.id,
                        kind=row.kind,
                        payload=row.payload,
                        created_at=row.created_at,
                        expires_at=row.expires_at,
                        attempts=row.attempts + 1,
                        lease=lease,
                    )
        return None

    async def complete(self, item: ClaimedItem) -> bool:
        async with self._db.write() as conn:
            return await finish_item(conn, item)

    async def retry(self, item: ClaimedItem, at: datetime, error: str) -> bool:
        async with self._db.write() as conn:
            result = await conn.execute(
                sa.update(mail_outbox)
                .where(mail_outbox.c.id == item.id, mail_outbox.c.next_attempt_at == item.lease)
                .values(next_attempt_at=at, last_error=error[:_ERROR_MAX])
            )
        return bool(result.rowcount)

    async def depth(self) -> int:
        async with self._db.read() as conn:
            count = (
                await conn.execute(sa.select(sa.func.count()).select_from(mail_outbox))
            ).scalar_one()
        return int(count)
