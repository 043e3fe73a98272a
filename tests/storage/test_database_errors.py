"""What a database error says: the statement, never the values bound to it."""

from __future__ import annotations

import traceback
import uuid
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from gatehouse.server.storage.database import Database
from gatehouse.server.storage.tables import users
from tests.conftest import truncate_all


async def test_a_failed_statement_names_no_bound_value(database_url: str) -> None:
    """A duplicate insert fails; neither the error nor its whole traceback (what an
    unexpected error's log line prints) holds the values of the statement."""
    db = Database(database_url)
    secret_hash = "$argon2id$v=19$m=19456,t=2,p=1$never-in-a-log"
    now = datetime.now(UTC)
    row = {
        "id": uuid.uuid4(),
        "username": "dup",
        "username_canonical": "dup",
        "email": "dup@example.com",
        "password_hash": secret_hash,
        "is_active": True,
        "created_at": now,
        "updated_at": now,
    }
    try:
        await truncate_all(db)
        async with db.write() as conn:
            await conn.execute(sa.insert(users).values(**row))
        with pytest.raises(Exception) as raised:  # noqa: PT011 - any error: its text is the point
            async with db.write() as conn:
                await conn.execute(sa.insert(users).values(**{**row, "id": uuid.uuid4()}))
        text = "".join(traceback.format_exception(raised.value))
        assert "users" in text
        assert secret_hash not in text
        assert "dup@example.com" not in text
    finally:
        await truncate_all(db)
        await db.dispose()
