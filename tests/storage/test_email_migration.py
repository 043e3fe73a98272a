"""Migration 0006 on a database with accounts: canonical addresses filled, duplicates reported.

Each test migrates a fresh database (SQLite and PostgreSQL) to 0005, inserts users as they
were before unique addresses, and upgrades to the newest revision.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from uuid import UUID

import asyncpg
import pytest
import sqlalchemy as sa

from gatehouse.server.storage import migrate
from gatehouse.server.storage.database import Database
from gatehouse.server.storage.tables import users
from tests.conftest import BACKENDS, POSTGRES_URL, _asyncpg_dsn

START = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture(params=BACKENDS)
async def fresh_db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    """An empty database of one backend, with no schema yet."""
    if request.param == "sqlite":
        db = Database(f"sqlite:///{tmp_path / 'fresh.db'}")
        try:
            yield db
        finally:
            await db.dispose()
        return
    name = f"gatehouse_mig_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(_asyncpg_dsn(POSTGRES_URL), timeout=10)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        url = sa.engine.make_url(POSTGRES_URL).set(database=name)
        db = Database(url.render_as_string(hide_password=False))
        try:
            yield db
        finally:
            await db.dispose()
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def _insert_users(db: Database, emails: list[str | None]) -> list[UUID]:
    """Users created one minute apart, in list order (so the first is the oldest)."""
    ids = [uuid.uuid4() for _ in emails]
    rows = [
        {
            "id": user_id,
            "username": f"user{n}",
            "username_canonical": f"user{n}",
            "email": email,
            "password_hash": "!",
            "is_active": True,
            "created_at": START + timedelta(minutes=n),
            "updated_at": START + timedelta(minutes=n),
            "is_service_account": False,
        }
        for n, (user_id, email) in enumerate(zip(ids, emails, strict=True))
    ]
    async with db.write() as conn:
        await conn.execute(sa.insert(users), rows)
    return ids


async def _canonical_by_id(db: Database) -> dict[UUID, tuple[str | None, str | None, bool]]:
    async with db.read() as conn:
        rows = (
            await conn.execute(
                sa.select(
                    users.c.id, users.c.email, users.c.email_canonical, users.c.email_verified
                )
            )
        ).all()
    return {r.id: (r.email, r.email_canonical, r.email_verified) for r in rows}


async def test_existing_addresses_get_their_canonical_form(fresh_db: Database) -> None:
    """Every address is folded for comparison; none is verified; users without stay NULL."""
    await migrate.upgrade(fresh_db, "0005")
    ids = await _insert_users(fresh_db, ["Alice@Example.COM", None, "bob@xn--mnchen-3ya.de"])
    await migrate.upgrade(fresh_db)
    found = await _canonical_by_id(fresh_db)
    assert found[ids[0]] == ("Alice@Example.COM", "alice@example.com", False)
    assert found[ids[1]] == (None, None, False)
    assert found[ids[2]] == ("bob@xn--mnchen-3ya.de", "bob@münchen.de", False)


async def test_duplicates_keep_the_oldest_claim_and_are_reported_by_user_id(
    fresh_db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    """Three accounts with one address in different cases: the oldest holds the canonical
    address, the two others keep their text with email_canonical NULL; one warning on the
    `gatehouse` logger names all three ids and not the address. A unique address is
    untouched by the report."""
    await migrate.upgrade(fresh_db, "0005")
    ids = await _insert_users(
        fresh_db,
        ["Dup@Example.com", "solo@example.com", "dup@example.com", "DUP@EXAMPLE.COM"],
    )
    with caplog.at_level(logging.WARNING, logger="gatehouse"):
        await migrate.upgrade(fresh_db)
    found = await _canonical_by_id(fresh_db)
    assert found[ids[0]] == ("Dup@Example.com", "dup@example.com", False)
    assert found[ids[1]][1] == "solo@example.com"
    assert found[ids[2]] == ("dup@example.com", None, False)
    assert found[ids[3]] == ("DUP@EXAMPLE.COM", None, False)
    reports = [r for r in caplog.records if r.name == "gatehouse" and "0006" in r.getMessage()]
    assert len(reports) == 1
    text = reports[0].getMessage()
    assert reports[0].levelno == logging.WARNING
    assert f"the oldest, user {ids[0]}, keeps it" in text
    assert str(ids[2]) in text
    assert str(ids[3]) in text
    assert str(ids[1]) not in text
    assert "example.com" not in text.lower()


async def test_the_unique_index_holds_after_the_migration(fresh_db: Database) -> None:
    """A second row with a taken canonical address cannot be written afterwards."""
    await migrate.upgrade(fresh_db, "0005")
    ids = await _insert_users(fresh_db, ["a@example.com", "A@example.com"])
    await migrate.upgrade(fresh_db)
    with pytest.raises(sa.exc.IntegrityError):
        async with fresh_db.write() as conn:
            await conn.execute(
                sa.update(users).where(users.c.id == ids[1]).values(email_canonical="a@example.com")
            )


async def test_more_users_than_one_batch_are_all_filled(fresh_db: Database) -> None:
    """2,500 accounts (past the 1,000-row batch): every one gets its canonical address."""
    await migrate.upgrade(fresh_db, "0005")
    await _insert_users(fresh_db, [f"User{n}@Example.com" for n in range(2500)])
    await migrate.upgrade(fresh_db)
    found = await _canonical_by_id(fresh_db)
    assert len(found) == 2500
    assert all(c == e.lower() for e, c, _ in found.values() if e is not None and c is not None)
    assert all(c is not None for _, c, _ in found.values())
