"""The engine, transactions, and the one place database failures are translated.

`read()` and `write()` hand out a `Connection` inside a transaction; repositories only ever
`await conn.execute(...)` (and migrations `await conn.run_sync(...)`), so they run
unchanged on both backends:

- **PostgreSQL**: SQLAlchemy's async engine over asyncpg; one pool per process.
- **SQLite**: SQLAlchemy's synchronous engine over the standard `sqlite3` module, called
  on the event loop's own thread. A statement on an indexed local file takes microseconds,
  while handing it to a driver thread and back (what aiosqlite does, five times for one
  small read) costs 100-200 us of CPU per hand-off: most of a login's non-hash cost before
  this design. Running inline is safe because nothing on this path ever waits on the loop
  thread:
  - every transaction takes its SQLite lock up front and waits for it asynchronously: a
    write opens with BEGIN IMMEDIATE (the write lock), a read with BEGIN and one probe
    (its WAL snapshot); `busy_timeout` is 0, and a busy database is retried after an
    `asyncio.sleep` with backoff, up to SQLITE_LOCK_WAIT_SECONDS, then answers 503.
    After that, no statement in the transaction can meet a lock (WAL readers never wait
    for writers; the writer holds the only write lock), so none can block the loop;
  - the pool never blocks at checkout (unbounded overflow; only a transaction that awaits
    something else between statements would ever need a second connection);
  - writers of one process also queue on an asyncio lock, in order, before they take a
    connection, so they do not spin against each other; the SQLite lock orders them
    against other processes (other workers, the CLI);
  - connections never checkpoint the WAL themselves (it fsyncs: 30-50 ms here); a
    background task does it from a worker thread (`Database.keep_checkpointed`).
  Reads see one snapshot for their whole transaction, like PostgreSQL's.

A database that cannot be reached, or stays locked past the wait, surfaces as
`StorageUnavailableError` (503), never a trace.

`on_commit` hooks run inside every write transaction that changed a row, just before it
commits: what must be written with a change or not at all (the audit trail's records of
state changes) is written there, on the transaction's own connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, Concatenate, ParamSpec, Protocol, TypeVar, cast

import asyncpg
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import CursorResult, make_url
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.sql.expression import Executable

from gatehouse.server.errors import StorageUnavailableError

log = logging.getLogger("gatehouse")

P = ParamSpec("P")
T = TypeVar("T")

_LISTEN_CONNECT_TIMEOUT_SECONDS = 5.0
# How long a SQLite transaction waits for its lock, in total, before answering 503.
SQLITE_LOCK_WAIT_SECONDS = 10.0
_FIRST_RETRY_SECONDS = 0.001
_MAX_RETRY_SECONDS = 0.05
# How often the server copies SQLite's WAL back into the database file (see `checkpoint`).
CHECKPOINT_INTERVAL_SECONDS = 1.0
# A WAL longer than this (frames of 4 KiB: 32 MiB) that background checkpoints did not catch
# up with (writes kept coming) gets one checkpoint while writers wait, so it can start over.
_CATCH_UP_FRAMES = 8192
_WAL_SIZE_LIMIT_BYTES = 64 * 1024 * 1024
# Starts a read transaction's snapshot: any statement that reads the file does.
_SNAPSHOT_PROBE = "SELECT 1 FROM sqlite_schema LIMIT 1"


class Connection(Protocol):
    """A connection inside one transaction, as repositories use it."""

    async def execute(self, statement: Executable, parameters: Any = None, /) -> CursorResult[Any]:
        """Run one statement; the result is fully buffered."""

    async def run_sync(
        self, fn: Callable[Concatenate[sa.Connection, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """Run synchronous SQLAlchemy code (Alembic) on this connection."""


# A pre-commit hook: given the transaction's connection, it may write in the transaction
# and return a function to call once the transaction has committed (None: nothing to do).
CommitHook = Callable[[Connection], Awaitable[Callable[[], None] | None]]


async def _run_hooks(hooks: Sequence[CommitHook], conn: Connection) -> list[Callable[[], None]]:
    after = []
    for hook in hooks:
        if (then := await hook(conn)) is not None:
            after.append(then)
    return after


def _after_commit(callbacks: Sequence[Callable[[], None]]) -> None:
    # The transaction has committed: a failing callback must not make it look as if not.
    for callback in callbacks:
        try:
            callback()
        except Exception:
            log.exception("an after-commit callback failed")


def _is_unavailable(exc: BaseException) -> bool:
    unavailable = OperationalError | InterfaceError | OSError | asyncio.TimeoutError
    if isinstance(exc, unavailable | sqlite3.OperationalError):
        return True
    return isinstance(exc, DBAPIError) and exc.connection_invalidated


def _is_busy(exc: BaseException) -> bool:
    orig = exc.orig if isinstance(exc, DBAPIError) else exc
    if not isinstance(orig, sqlite3.OperationalError):
        return False
    return orig.sqlite_errorcode & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)


class Database:
    """Read and write transactions with error translation, on SQLite or PostgreSQL."""

    def __init__(
        self,
        url: str,
        *,
        pool_size: int = 10,
        echo: bool = False,
        sqlite_lock_wait: float = SQLITE_LOCK_WAIT_SECONDS,
    ) -> None:
        parsed = make_url(url)
        self.is_sqlite = parsed.get_backend_name() == "sqlite"
        self._hooks: list[CommitHook] = []
        self._backend: _Backend = (
            _SqliteBackend(
                parsed.set(drivername="sqlite+pysqlite"),
                pool_size,
                echo,
                sqlite_lock_wait,
                self._hooks,
            )
            if self.is_sqlite
            else _AsyncBackend(parsed, pool_size, echo, self._hooks)
        )

    def on_commit(self, hook: CommitHook) -> None:
        """Run `hook(conn)` inside every write transaction that changed a row (an INSERT,
        UPDATE or DELETE that matched one), after the block and just before the commit.

        The hook may write on `conn`: it commits or rolls back with the change, and a hook
        that raises rolls the transaction back. It may return a function, called once the
        transaction has committed. A transaction that changed nothing (a read-then-return,
        an UPDATE that matched no row) commits without hooks, so nothing is recorded of a
        change that did not happen. (On PostgreSQL, changes are seen through SQLAlchemy's
        insert, update and delete constructs; a textual `sa.text` statement is not counted.)
        """
        self._hooks.append(hook)

    def read(self) -> AbstractAsyncContextManager[Connection]:
        """A read transaction (one snapshot on both backends)."""
        return self._backend.transaction(write=False)

    def write(self) -> AbstractAsyncContextManager[Connection]:
        """A write transaction; on SQLite, one writer at a time."""
        return self._backend.transaction(write=True)

    async def ping(self) -> None:
        """Raises: StorageUnavailableError when the database does not answer."""
        async with self.read() as conn:
            await conn.execute(sa.text("SELECT 1"))

    @property
    def can_listen(self) -> bool:
        """Whether `listen` can deliver notifications (PostgreSQL) or not (SQLite)."""
        return not self.is_sqlite

    async def listen(
        self, channel: str, on_message: Callable[[str], None], ready: Callable[[], None]
    ) -> None:
        """Deliver the payload of every NOTIFY on `channel` to `on_message`, on a
        connection of its own, until cancelled; call `ready` once listening. Returns at
        once where the database cannot push (SQLite).

        Raises:
            StorageUnavailableError: the database cannot be reached, or the connection
                was lost (call again to resume; notifications in between are missed).
        """
        await self._backend.listen(channel, on_message, ready)

    async def checkpoint(self) -> int:
        """Copy SQLite's whole WAL into the database file, while this process's writers
        wait; return the number of frames copied. Does nothing on PostgreSQL.

        The serving connections never checkpoint by themselves (it fsyncs: 30-50 ms here,
        on the loop thread); the server's `Services` runs `keep_checkpointed` instead.
        """
        _log, done = await self._backend.checkpoint(catch_up=True)
        return max(done, 0)  # -1: another process was checkpointing at that moment

    async def keep_checkpointed(self, interval: float = CHECKPOINT_INTERVAL_SECONDS) -> None:
        """Every `interval` seconds with writes in it, checkpoint from a worker thread
        beside the writers (PASSIVE: nobody waits). The WAL starts over only when a write
        finds it wholly copied, which a steady stream of writes never allows; so once it
        has grown past _CATCH_UP_FRAMES, checkpoint once more with this process's writers
        waiting. Runs until cancelled; returns at once on PostgreSQL.
        """
        while await self._backend.writes_after(interval):
            try:
                log_frames, _done = await self._backend.checkpoint(catch_up=False)
                if log_frames >= _CATCH_UP_FRAMES:
                    await self._backend.checkpoint(catch_up=True)
            except Exception:  # a background loop must outlive any one failure
                log.warning("SQLite checkpoint failed; will retry", exc_info=True)

    async def dispose(self) -> None:
        await self._backend.dispose()


class _Backend(Protocol):
    def transaction(self, *, write: bool) -> AbstractAsyncContextManager[Connection]:
        """A `Connection` inside a transaction; failures to reach the database translated."""

    async def listen(
        self, channel: str, on_message: Callable[[str], None], ready: Callable[[], None]
    ) -> None: ...

    async def checkpoint(self, *, catch_up: bool) -> tuple[int, int]:
        """Checkpoint; return (frames in the WAL, frames copied)."""

    async def writes_after(self, interval: float) -> bool:
        """Wait `interval`, then until something was written; False if never needed."""

    async def dispose(self) -> None: ...


class _AsyncBackend:
    """PostgreSQL through SQLAlchemy's async engine."""

    def __init__(self, url: sa.URL, pool_size: int, echo: bool, hooks: list[CommitHook]) -> None:
        self._hooks = hooks
        # Every use of a connection ends in an explicit commit or rollback, so the pool's
        # own rollback on return would only add a round trip per request.
        self._engine: AsyncEngine = create_async_engine(
            url,
            echo=echo,
            pool_reset_on_return=None,
            pool_size=pool_size,
            max_overflow=pool_size,
            pool_timeout=10,
            connect_args={"timeout": 5, "command_timeout": 15},
            # Errors name the statement, never its values (hashes, digests, addresses):
            # an unexpected error's log line must not carry them.
            hide_parameters=True,
        )

    @asynccontextmanager
    async def transaction(self, *, write: bool) -> AsyncIterator[Connection]:
        try:
            async with self._engine.connect() as conn:
                if not (write and self._hooks):
                    async with conn.begin():
                        yield conn
                    return
                tracked = _TrackedConnection(conn)
                async with conn.begin():
                    yield tracked
                    after = await _run_hooks(self._hooks, tracked) if tracked.changed else []
                _after_commit(after)
        except Exception as exc:
            if _is_unavailable(exc):
                raise StorageUnavailableError from exc
            raise

    async def listen(
        self, channel: str, on_message: Callable[[str], None], ready: Callable[[], None]
    ) -> None:
        # A connection outside the pool, made with the arguments SQLAlchemy would use.
        _args, params = self._engine.dialect.create_connect_args(self._engine.url)
        try:
            conn = await asyncpg.connect(**params, timeout=_LISTEN_CONNECT_TIMEOUT_SECONDS)
        except (TimeoutError, OSError, asyncpg.PostgresError) as exc:
            raise StorageUnavailableError from exc
        lost = asyncio.Event()
        try:
            conn.add_termination_listener(lambda _conn: lost.set())
            await conn.add_listener(
                channel, lambda _conn, _pid, _channel, payload: on_message(payload)
            )
            ready()
            await lost.wait()
            raise StorageUnavailableError
        finally:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.close(), _LISTEN_CONNECT_TIMEOUT_SECONDS)

    async def checkpoint(self, *, catch_up: bool) -> tuple[int, int]:
        return 0, 0

    async def writes_after(self, interval: float) -> bool:
        return False

    async def dispose(self) -> None:
        await self._engine.dispose()


class _TrackedConnection:
    """A PostgreSQL connection that notes whether a statement changed a row (for hooks).

    asyncpg reports the rows of every INSERT, UPDATE and DELETE (RETURNING included); an
    executemany reports -1, unknown, which counts as a change.
    """

    __slots__ = ("_conn", "changed")

    def __init__(self, conn: Any) -> None:
        self._conn = conn
        self.changed = False

    async def execute(self, statement: Executable, parameters: Any = None, /) -> CursorResult[Any]:
        result: CursorResult[Any] = await self._conn.execute(statement, parameters)
        if not self.changed and getattr(statement, "is_dml", False) and result.rowcount != 0:
            self.changed = True
        return result

    async def run_sync(
        self, fn: Callable[Concatenate[sa.Connection, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        self.changed = True  # whatever it does, it may have changed something
        result: T = await self._conn.run_sync(fn, *args, **kwargs)
        return result


class _InlineConnection:
    """A synchronous SQLite connection behind the async `Connection` interface."""

    __slots__ = ("_conn",)

    def __init__(self, conn: sa.Connection) -> None:
        self._conn = conn

    async def execute(self, statement: Executable, parameters: Any = None, /) -> CursorResult[Any]:
        return self._conn.execute(statement, parameters)

    async def run_sync(
        self, fn: Callable[Concatenate[sa.Connection, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        return fn(self._conn, *args, **kwargs)


class _SqliteBackend:
    """SQLite through the stdlib driver, on the event loop thread (see the module doc)."""

    def __init__(
        self, url: sa.URL, pool_size: int, echo: bool, lock_wait: float, hooks: list[CommitHook]
    ) -> None:
        self._lock_wait = lock_wait
        self._hooks = hooks
        self._engine = sa.create_engine(
            url,
            echo=echo,
            pool_reset_on_return=None,
            pool_size=pool_size,
            max_overflow=-1,
            # Connections are made and used on the loop thread, but disposal and Alembic
            # may touch them from elsewhere; each is only ever used by one party at a time.
            connect_args={"check_same_thread": False},
            hide_parameters=True,  # as on PostgreSQL: no values in error messages
        )
        event.listen(self._engine, "connect", _on_sqlite_connect)
        self._writer = asyncio.Lock()
        self._path = url.database or ""
        self._checkpointer: sqlite3.Connection | None = None
        # A cancelled checkpoint runs on in its thread: this keeps the next one, and
        # `dispose`, from touching the connection meanwhile.
        self._checkpointer_lock = threading.Lock()
        self._written = asyncio.Event()  # set by every write since the last checkpoint

    @asynccontextmanager
    async def transaction(self, *, write: bool) -> AsyncIterator[Connection]:
        # One generator, no nested context managers: this runs for every request.
        if write:
            await self._writer.acquire()
        try:
            conn = await self._begin(write=write)
            after: list[Callable[[], None]] = []
            try:
                inline = _InlineConnection(conn)
                if write and self._hooks:
                    # Every row a statement inserts, updates or deletes counts here (RETURNING
                    # included, which rowcount would not always report).
                    raw = cast(sqlite3.Connection, conn.connection.driver_connection)
                    changes = raw.total_changes
                    yield inline
                    if raw.total_changes != changes:
                        after = await _run_hooks(self._hooks, inline)
                else:
                    yield inline
            except BaseException:
                conn.rollback()
                raise
            else:
                conn.commit()
                if write:
                    self._written.set()
            finally:
                conn.close()
            _after_commit(after)
        except Exception as exc:
            if _is_unavailable(exc):
                raise StorageUnavailableError from exc
            raise
        finally:
            if write:
                self._writer.release()

    async def _begin(self, *, write: bool) -> sa.Connection:
        """A pooled connection in a transaction that holds its lock, waited for politely."""
        deadline = time.monotonic() + self._lock_wait
        delay = _FIRST_RETRY_SECONDS
        while True:
            try:
                return self._try_begin(write=write)
            except (OperationalError, sqlite3.OperationalError) as exc:
                if not _is_busy(exc) or time.monotonic() + delay > deadline:
                    raise
            await asyncio.sleep(delay * random.uniform(0.5, 1.5))  # noqa: S311 - jitter
            delay = min(delay * 2, _MAX_RETRY_SECONDS)

    def _try_begin(self, *, write: bool) -> sa.Connection:
        conn = self._engine.connect()
        try:
            conn.begin()
            # Straight to the driver: through SQLAlchemy each of these costs ~40 us more.
            raw = cast(sqlite3.Connection, conn.connection.driver_connection)
            if write:
                raw.execute("BEGIN IMMEDIATE")
            else:
                raw.execute("BEGIN")
                raw.execute(_SNAPSHOT_PROBE).fetchall()
        except BaseException:
            conn.rollback()
            conn.close()
            raise
        return conn

    async def listen(
        self, channel: str, on_message: Callable[[str], None], ready: Callable[[], None]
    ) -> None:
        return  # SQLite has no notifications: other processes are seen by polling

    async def checkpoint(self, *, catch_up: bool) -> tuple[int, int]:
        # Catching up means holding the writer lock: with no writes of ours appending
        # meanwhile, the checkpoint copies the whole WAL and the next write starts it over
        # (truncated to journal_size_limit). Beside a steady stream of writes a checkpoint
        # never catches up, and the WAL would grow without end.
        self._written.clear()
        try:
            if not catch_up:
                return await asyncio.to_thread(self._checkpoint_sync)
            async with self._writer:
                return await asyncio.to_thread(self._checkpoint_sync)
        except sqlite3.Error as exc:
            raise StorageUnavailableError from exc

    async def writes_after(self, interval: float) -> bool:
        await asyncio.sleep(interval)
        await self._written.wait()
        return True

    def _checkpoint_sync(self) -> tuple[int, int]:
        with self._checkpointer_lock:
            if self._checkpointer is None:
                self._checkpointer = sqlite3.connect(
                    self._path, isolation_level=None, check_same_thread=False
                )
            # Another process checkpointing at this moment is not an error (it does the
            # job); this one then reports -1s.
            _busy, log_frames, done = self._checkpointer.execute(
                "PRAGMA wal_checkpoint(PASSIVE)"
            ).fetchone()
            return int(log_frames), int(done)

    async def dispose(self) -> None:
        with self._checkpointer_lock:  # waits out a checkpoint still running in its thread
            if self._checkpointer is not None:
                self._checkpointer.close()
                self._checkpointer = None
        self._engine.dispose()


def _on_sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    # We issue BEGIN ourselves; the driver must not open transactions behind our back.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    # Lock waits happen in `_SqliteBackend._begin`, asynchronously; never inside SQLite.
    cursor.execute("PRAGMA busy_timeout=0")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    # A checkpoint writes the WAL back into the file and fsyncs: 30-50 ms here, too long
    # for the loop thread. `Database.keep_checkpointed` does it from a worker thread.
    cursor.execute("PRAGMA wal_autocheckpoint=0")
    # After a checkpoint empties it, the WAL file shrinks back to at most this size.
    cursor.execute(f"PRAGMA journal_size_limit={_WAL_SIZE_LIMIT_BYTES}")
    cursor.close()
