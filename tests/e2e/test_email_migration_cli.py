"""Migration 0006 run by the real console script: duplicate addresses reported on stderr.

A SQLite database is brought to revision 0005 and given accounts that share an address in
different cases, as existed before addresses were unique; then `gatehouse db upgrade` (or
`gatehouse serve`, which migrates SQLite first) finishes the migration.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from uuid import UUID

import sqlalchemy as sa

from gatehouse.server.config import DATABASE_FILE_NAME
from gatehouse.server.storage import migrate
from gatehouse.server.storage.database import Database
from gatehouse.server.storage.tables import users
from tests.e2e.harness import Deployment

START = datetime(2026, 1, 1, tzinfo=UTC)


async def _old_database_with_duplicates(deployment: Deployment) -> list[UUID]:
    deployment.data_dir.mkdir(mode=0o700, parents=True)
    db = Database(f"sqlite:///{deployment.data_dir / DATABASE_FILE_NAME}")
    ids = [uuid.uuid4() for _ in range(3)]
    try:
        await migrate.upgrade(db, "0005")
        async with db.write() as conn:
            await conn.execute(
                sa.insert(users),
                [
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
                    for n, (user_id, email) in enumerate(
                        zip(
                            ids,
                            ["Ann@Example.com", "ann@example.com", "other@example.com"],
                            strict=True,
                        )
                    )
                ],
            )
    finally:
        await db.dispose()
    return ids


async def test_db_upgrade_reports_duplicate_addresses_on_stderr(deployment: Deployment) -> None:
    """`gatehouse db upgrade` succeeds and warns on stderr naming the kept and the other
    account by id, never the address."""
    ids = await _old_database_with_duplicates(deployment)
    result = deployment.cli("db", "upgrade")
    assert result.returncode == 0, result.stderr
    assert "migration 0006" in result.stderr
    assert f"the oldest, user {ids[0]}, keeps it" in result.stderr
    assert str(ids[1]) in result.stderr
    assert str(ids[2]) not in result.stderr
    assert "example.com" not in result.stderr.lower()
    assert "migration 0006" not in result.stdout


async def test_serve_reports_duplicate_addresses_in_its_log(deployment: Deployment) -> None:
    """`gatehouse serve` migrating the same database logs the warning (stderr, JSON)."""
    ids = await _old_database_with_duplicates(deployment)
    with deployment.serve() as server:
        entries = [e for e in server.log_entries() if "migration 0006" in str(e.get("message"))]
    assert len(entries) == 1
    assert entries[0]["level"].lower().startswith("warn")
    assert str(ids[1]) in entries[0]["message"]
    assert "example.com" not in entries[0]["message"].lower()
