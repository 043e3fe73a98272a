"""The engine, transactions, and the one place database failures are translated.

`read()` and `write()` hand out connections inside a transaction. On SQLite, a write
transaction starts with BEGIN IMMEDIATE so it takes the write lock up front and waits on
`busy_timeout`, instead of failing when it upgrades a read lock under concurrency; the file
runs in WAL mode so readers never wait for writers. Writers of one process also queue on an
asyncio lock before they take a connection: SQLite admits one writer at a time anyway, and
its busy handler waits by sleeping (up to 100 ms a try), which under concurrency turns
into second-long tails; the lock makes them wait in order instead, and leaves busy_timeout
for writers in other processes. A database that cannot be reached, or
stays locked past the timeout, surfaces as `StorageUnavailableError` (503), never a trace.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from gatehouse.server.errors import StorageUnavailableError

_WRITE_OPTION = "gatehouse_write"
SQLITE_BUSY_TIMEOUT_MS = 10_000


def _is_unavailable(exc: BaseException) -> bool:
    if isinstance(exc, OperationalError | InterfaceError | OSError | asyncio.TimeoutError):
        return True
    return isinstance(exc, DBAPIError) and exc.connection_invalidated


class Database:
    """An async engine plus read and write transactions with error translation."""

    def __init__(self, url: str, *, pool_size: int = 10, echo: bool = False) -> None:
        parsed = make_url(url)
        self.is_sqlite = parsed.get_backend_name() == "sqlite"
        # Every use of a connection ends in an explicit commit or rollback (`_transaction`),
        # so the pool's own rollback on return would only add a round trip per request.
        kwargs: dict[str, Any] = {"echo": echo, "pool_reset_on_return": None}
        if self.is_sqlite:
            kwargs["pool_size"] = pool_size
        else:
            kwargs.update(
                pool_size=pool_size,
                max_overflow=pool_size,
                pool_timeout=10,
                connect_args={"timeout": 5, "command_timeout": 15},
            )
        self.engine: AsyncEngine = create_async_engine(url, **kwargs)
        if self.is_sqlite:
            _configure_sqlite(self.engine)
        self._sqlite_writer = asyncio.Lock() if self.is_sqlite else None

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        async with self._transaction(write=False) as conn:
            yield conn

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncConnection]:
        if self._sqlite_writer is None:
            async with self._transaction(write=True) as conn:
                yield conn
            return
        async with self._sqlite_writer, self._transaction(write=True) as conn:
            yield conn

    @asynccontextmanager
    async def _transaction(self, *, write: bool) -> AsyncIterator[AsyncConnection]:
        try:
            async with self.engine.connect() as conn:
                if write and self.is_sqlite:
                    await conn.execution_options(**{_WRITE_OPTION: True})
                async with conn.begin():
                    yield conn
        except StorageUnavailableError:
            raise
        except Exception as exc:
            if _is_unavailable(exc):
                raise StorageUnavailableError from exc
            raise

    async def ping(self) -> None:
        """Raises: StorageUnavailableError when the database does not answer."""
        async with self.read() as conn:
            await conn.execute(text("SELECT 1"))

    async def dispose(self) -> None:
        await self.engine.dispose()


def _configure_sqlite(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let us issue BEGIN ourselves (below) instead of the driver's implicit one.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        # Reads run in autocommit: each SELECT sees one consistent snapshot by itself, and
        # skipping BEGIN saves a hand-off to the driver thread on every read. No read here
        # needs two statements to agree with each other.
        if conn.get_execution_options().get(_WRITE_OPTION, False):
            conn.exec_driver_sql("BEGIN IMMEDIATE")
