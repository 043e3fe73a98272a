"""Single-use account tokens on SQLAlchemy Core (`account_tokens`): reset and verification.

Only the HMAC digest of a token is stored (unique, so a lookup is one index probe). A token
is live while `used_at` is NULL and `expires_at` is ahead; issuing one ends the user's
other live tokens of its purpose (superseded), and using one is a compare-and-swap on
`used_at IS NULL`, so of two concurrent uses exactly one wins. Every transaction takes the
user's row before any of the user's tokens (as the user repository's writes do), so two
issues for one user run one after the other and none of these writes can deadlock.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa

from gatehouse.server.accounts.models import (
    RESET,
    AccountToken,
    NewAccountToken,
    TokenPurpose,
)
from gatehouse.server.mail.models import ClaimedItem, NewOutboxItem
from gatehouse.server.storage.database import Connection, Database
from gatehouse.server.storage.invalidations import InvalidationLog
from gatehouse.server.storage.outbox import finish_item, outbox_values
from gatehouse.server.storage.tables import account_tokens, mail_outbox, user_roles, users
from gatehouse.server.storage.users import USER_COLUMNS, revoke_user_sessions, users_from_rows

_LIVE = (
    sa.select(
        account_tokens.c.id.label("token_id"),
        account_tokens.c.purpose,
        account_tokens.c.email.label("token_email"),
        account_tokens.c.expires_at.label("token_expires_at"),
        *USER_COLUMNS,
        user_roles.c.role,
    )
    .join(users, users.c.id == account_tokens.c.user_id)
    .outerjoin(user_roles, user_roles.c.user_id == users.c.id)
    .where(
        account_tokens.c.digest == sa.bindparam("digest", type_=account_tokens.c.digest.type),
        account_tokens.c.purpose == sa.bindparam("purpose"),
        account_tokens.c.used_at.is_(None),
        account_tokens.c.expires_at > sa.bindparam("now", type_=account_tokens.c.expires_at.type),
        users.c.is_active.is_(True),
    )
)


class _NotLive(Exception):
    """Rolls a transaction back when the token or the job turned out not to be live."""


async def end_live_tokens(
    conn: Connection, user_id: Any, purpose: TokenPurpose, now: datetime
) -> None:
    """Mark the user's live tokens of `purpose` used, inside `conn`'s transaction."""
    await conn.execute(
        sa.update(account_tokens)
        .where(
            account_tokens.c.user_id == user_id,
            account_tokens.c.purpose == purpose,
            account_tokens.c.used_at.is_(None),
        )
        .values(used_at=now)
    )


async def _use(conn: Connection, token: AccountToken, now: datetime) -> None:
    result = await conn.execute(
        sa.update(account_tokens)
        .where(
            account_tokens.c.id == token.id,
            account_tokens.c.used_at.is_(None),
            account_tokens.c.expires_at > now,
        )
        .values(used_at=now)
    )
    if not result.rowcount:
        raise _NotLive


async def _lock_user(conn: Connection, user_id: Any) -> bool:
    """Lock the user's row for this transaction (PostgreSQL; SQLite's writer lock does it
    already); False when the user is gone."""
    row = await conn.execute(sa.select(users.c.id).where(users.c.id == user_id).with_for_update())
    return row.first() is not None


class SqlAccountTokenRepository:
    def __init__(self, db: Database, invalidations: InvalidationLog) -> None:
        self._db = db
        self._log = invalidations

    async def issue(self, token: NewAccountToken, *, mail: NewOutboxItem, job: ClaimedItem) -> bool:
        try:
            async with self._db.write() as conn:
                if not await finish_item(conn, job):
                    raise _NotLive
                # The user's row first: two workers issuing for one user at once are
                # serialised, so the later sees (and ends) the earlier's token; an UPDATE
                # cannot see a row another transaction inserted and has not committed.
                if not await _lock_user(conn, token.user_id):
                    raise _NotLive
                await end_live_tokens(conn, token.user_id, token.purpose, token.created_at)
                await conn.execute(
                    sa.insert(account_tokens).values(
                        id=token.id,
                        user_id=token.user_id,
                        purpose=token.purpose,
                        digest=token.digest,
                        email=token.email,
                        created_at=token.created_at,
                        expires_at=token.expires_at,
                    )
                )
                await conn.execute(sa.insert(mail_outbox).values(outbox_values(mail)))
        except _NotLive:
            return False
        return True

    async def find_live(
        self, purpose: TokenPurpose, digest: bytes, now: datetime
    ) -> AccountToken | None:
        async with self._db.read() as conn:
            rows = (
                await conn.execute(_LIVE, {"digest": digest, "purpose": purpose, "now": now})
            ).all()
        if not rows:
            return None
        first = rows[0]
        return AccountToken(
            id=first.token_id,
            purpose=first.purpose,
            email=first.token_email,
            expires_at=first.token_expires_at,
            user=users_from_rows(rows)[0],
        )

    async def reset_password(self, token: AccountToken, password_hash: str, now: datetime) -> bool:
        user_id = token.user.id
        try:
            async with self._db.write() as conn:
                # The user's row before the token's (the order of every transaction here).
                changed = await conn.execute(
                    sa.update(users)
                    .where(users.c.id == user_id, users.c.is_active.is_(True))
                    .values(password_hash=password_hash, updated_at=now)
                )
                if not changed.rowcount:
                    raise _NotLive
                await _use(conn, token, now)
                await end_live_tokens(conn, user_id, RESET, now)
                # Whoever held a session (the reason to reset, often) is signed out.
                await revoke_user_sessions(conn, user_id, now, "password_reset", None)
                await self._log.record(conn, [user_id], now)
        except _NotLive:
            return False
        self._log.publish([user_id])
        return True

    async def verify_email(self, token: AccountToken, now: datetime) -> bool:
        user_id = token.user.id
        if token.email is None:
            return False
        try:
            async with self._db.write() as conn:
                # Still the address the token was mailed to? (NULL never matches.) The
                # user's row before the token's, as everywhere here.
                marked = await conn.execute(
                    sa.update(users)
                    .where(users.c.id == user_id, users.c.email_canonical == token.email)
                    .values(email_verified=True, updated_at=now)
                )
                if not marked.rowcount:
                    raise _NotLive
                await _use(conn, token, now)
                await self._log.record(conn, [user_id], now)
        except _NotLive:
            return False
        self._log.publish([user_id])
        return True

    async def prune(self, now: datetime) -> int:
        async with self._db.write() as conn:
            result = await conn.execute(
                sa.delete(account_tokens).where(account_tokens.c.expires_at < now)
            )
        return int(result.rowcount)
