"""Migrations: the schema they build is the schema the code declares, on both backends."""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.engine import Connection

from gatehouse.server.storage import migrate
from gatehouse.server.storage.database import Database
from gatehouse.server.storage.tables import metadata


async def test_migrated_schema_matches_the_table_definitions(database_url: str) -> None:
    """Alembic autogenerate finds no difference between the migrated database and tables.py."""
    db = Database(database_url)

    def diff(connection: Connection) -> list[Any]:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return list(compare_metadata(context, metadata))

    try:
        async with db.read() as conn:
            differences = await conn.run_sync(diff)
        assert differences == []
        assert await migrate.is_current(db)
    finally:
        await db.dispose()
