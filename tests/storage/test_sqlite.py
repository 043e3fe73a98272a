"""SQLite runs on the event loop thread: lock waits must be asynchronous, reads consistent,
and checkpoints (fsyncs) kept off that thread.

Another process is played by a plain `sqlite3` connection to the same file; what it holds is
a real SQLite lock, and the Database under test sees it as any other process's.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from gatehouse.server.config import Settings
from gatehouse.server.errors import StorageUnavailableError
from gatehouse.server.storage import database
from gatehouse.server.storage.database import Database
from gatehouse.server.wiring import Services


@pytest.fixture
def path(tmp_path: Path) -> Path:
    file = tmp_path / "locks.db"
    conn = sqlite3.connect(file, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE items (n INTEGER)")
    conn.execute("INSERT INTO items VALUES (1)")
    conn.close()
    return file


@pytest.fixture
async def db(path: Path) -> AsyncIterator[Database]:
    database = Database(f"sqlite:///{path}", sqlite_lock_wait=2.0)
    yield database
    await database.dispose()


@pytest.fixture
def other(path: Path) -> Iterator[sqlite3.Connection]:
    """Another process's connection, in autocommit mode so BEGIN is ours to issue."""
    conn = sqlite3.connect(path, isolation_level=None)
    yield conn
    conn.close()


def file_size(path: Path) -> int:
    return path.stat().st_size


async def count(db: Database) -> int:
    async with db.read() as conn:
        return int((await conn.execute(sa.text("SELECT count(*) FROM items"))).scalar_one())


async def insert(db: Database) -> None:
    async with db.write() as conn:
        await conn.execute(sa.text("INSERT INTO items VALUES (2)"))


async def test_a_write_waits_for_another_writer_without_blocking_the_loop(
    db: Database, other: sqlite3.Connection
) -> None:
    """While another connection holds the write lock, reads go on; the write lands after."""
    other.execute("BEGIN IMMEDIATE")
    writer = asyncio.create_task(insert(db))
    await asyncio.sleep(0.1)
    assert not writer.done()
    # The loop is free while the writer waits: a read runs and completes meanwhile.
    assert await asyncio.wait_for(count(db), timeout=1) == 1
    other.execute("COMMIT")
    await asyncio.wait_for(writer, timeout=1)
    assert await count(db) == 2


async def test_a_write_gives_up_as_unavailable_when_the_lock_is_never_released(
    path: Path, other: sqlite3.Connection
) -> None:
    """Past the lock wait, the write raises StorageUnavailableError (a 503) and stores nothing."""
    db = Database(f"sqlite:///{path}", sqlite_lock_wait=0.2)
    other.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(StorageUnavailableError):
            await insert(db)
        other.execute("ROLLBACK")
        assert await count(db) == 1
    finally:
        await db.dispose()


async def test_a_read_waits_out_an_exclusive_lock_without_blocking_the_loop(
    db: Database, other: sqlite3.Connection
) -> None:
    """A connection in exclusive locking mode shuts readers out; the read waits, then runs."""
    other.execute("PRAGMA locking_mode=EXCLUSIVE")
    other.execute("BEGIN EXCLUSIVE")
    reader = asyncio.create_task(count(db))
    # Were the wait inside SQLite (busy_timeout), it would hold the loop for the whole lock
    # wait and then fail; instead the reader is still waiting, and this coroutine ran.
    await asyncio.sleep(0.1)
    assert not reader.done()
    other.execute("COMMIT")
    other.close()  # in WAL mode, an exclusive-mode connection lets go when it closes
    assert await asyncio.wait_for(reader, timeout=1) == 1


async def test_a_read_transaction_sees_one_snapshot(
    db: Database, other: sqlite3.Connection
) -> None:
    """A commit by another connection between two statements of one read is not seen."""
    async with db.read() as conn:
        first = (await conn.execute(sa.text("SELECT count(*) FROM items"))).scalar_one()
        other.execute("INSERT INTO items VALUES (3)")
        second = (await conn.execute(sa.text("SELECT count(*) FROM items"))).scalar_one()
    assert first == second == 1
    assert await count(db) == 2


async def test_serving_connections_leave_checkpoints_to_checkpoint(
    db: Database, path: Path
) -> None:
    """Writes stay in the WAL (no checkpoint on the loop thread) until `checkpoint` runs."""
    for _ in range(20):
        async with db.write() as conn:  # a page-sized row each, so the file must grow
            await conn.execute(sa.text("INSERT INTO items VALUES (randomblob(4096))"))
    async with db.read() as conn:
        autocheckpoint = (await conn.execute(sa.text("PRAGMA wal_autocheckpoint"))).scalar()
    assert autocheckpoint == 0
    size_before = file_size(path)
    assert await db.checkpoint() > 0
    assert file_size(path) > size_before  # the pages reached the database file
    assert await count(db) == 21


async def test_the_wal_starts_over_under_a_steady_stream_of_writes(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Background checkpoints beside writers never let the WAL restart by themselves; past
    the catch-up length, one checkpoint with writers waiting does, so the WAL stays short."""
    monkeypatch.setattr(database, "_CATCH_UP_FRAMES", 100)
    checkpointer = asyncio.create_task(db.keep_checkpointed(interval=0.005))
    try:
        for _ in range(600):  # two pages or more each: 1200+ frames if the WAL never restarts
            async with db.write() as conn:
                await conn.execute(sa.text("INSERT INTO items VALUES (randomblob(4096))"))
            await asyncio.sleep(0)  # as requests do between transactions
    finally:
        checkpointer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await checkpointer
    wal_frames = await db.checkpoint()  # after any cancelled one still in its thread
    assert 0 < wal_frames < 600
    assert await count(db) == 601


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_a_started_server_checkpoints_in_the_background(
    services: Services, settings: Settings
) -> None:
    """Services.start runs the checkpointer: the database file grows without anyone asking."""
    file = Path(sa.engine.make_url(settings.resolved_database_url).database or "")
    await services.db.checkpoint()
    size_before = file_size(file)
    for i in range(200):
        await services.accounts.register(f"user{i}", "correct horse battery")
    await services.start()
    for _ in range(50):
        if file_size(file) > size_before:
            break
        await asyncio.sleep(0.1)
    assert file_size(file) > size_before
