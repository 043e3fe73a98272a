"""Apply Alembic migrations programmatically (the CLI, `serve` and tests call this)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection

from gatehouse.server.storage.database import Database

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def alembic_config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


async def upgrade(db: Database, revision: str = "head") -> None:
    """Bring the schema up to `revision` over the database's own engine.

    Raises:
        StorageUnavailableError: the database cannot be reached.
    """

    def _run(connection: Connection) -> None:
        command.upgrade(alembic_config(connection), revision)

    async with db.write() as conn:
        await conn.run_sync(_run)


async def is_current(db: Database) -> bool:
    """Whether the schema is at the newest revision this code ships."""

    def _run(connection: Connection) -> bool:
        current = MigrationContext.configure(connection).get_current_heads()
        head = ScriptDirectory.from_config(alembic_config()).get_heads()
        return set(current) == set(head)

    async with db.read() as conn:
        return await conn.run_sync(_run)
