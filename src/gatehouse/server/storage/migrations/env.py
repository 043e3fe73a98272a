"""Alembic environment: runs on the connection `migrate.upgrade` hands over."""

from __future__ import annotations

from alembic import context

from gatehouse.server.storage.tables import metadata

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("Run migrations with `gatehouse db upgrade`, which supplies a connection.")

context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
