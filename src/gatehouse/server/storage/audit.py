"""The audit trail on SQLAlchemy Core: the server's recorder, and the queries of the trail.

`SqlAuditRecorder` is the one `AuditRecorder` of a process (`audit/models.py` states its
contract). Every event is completed and cleaned (`audit/clean.py`), written to storage, and
also logged as one JSON line on the `gatehouse.audit` logger, so log shippers see events
as they did before the trail was stored (and see them while the database is down):

- `staged(*events)`: the events wait in a context variable, tagged with the task that
  staged them; `Database.on_commit` calls this recorder inside every write transaction
  that changed a row, and the events the *current task* staged go into that transaction.
  A background task started inside the block copies the context but is another task, so it
  never takes them. They are logged once the transaction has committed. If the block
  raises before a write took them, they are dropped; if it ends without one, they are
  queued as by `record`.
- `record(event)`: queued in memory and written by a background task in one batch insert
  about half a second after the first queued event (never on the request's path). While
  the database is down the queue is kept and retried with backoff (up to 30 s between
  tries); it holds at most `max_queued` events (10,000 by default), and past that the
  oldest are dropped, counted in `dropped` and warned about. Queued events carry their id
  from the start, and the batch insert skips ids already stored, so a batch retried after
  a commit whose answer was lost is not stored twice. `close()` writes what is queued.

`SqlAuditRepository` searches (newest first, by the indexes of `audit_events`) and prunes.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import json
import logging
import secrets
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from gatehouse.server.audit.clean import complete, event_document
from gatehouse.server.audit.models import Actor, AuditEvent, Subject
from gatehouse.server.audit.repository import AuditQuery, StoredEvent
from gatehouse.server.clock import Clock
from gatehouse.server.context import request_context
from gatehouse.server.storage.database import Connection, Database
from gatehouse.server.storage.tables import audit_events

log = logging.getLogger("gatehouse")
audit_log = logging.getLogger("gatehouse.audit")

# The first queued event waits at most this long (seconds) for its batch to be written.
FLUSH_AFTER_SECONDS = 0.5
MAX_QUEUED = 10_000
# Rows per transaction. On SQLite a write runs on the event loop's thread, so a batch is a
# pause of every request: 100 rows cost a few milliseconds, and the writer yields to the
# loop between batches (bench/run: 500-row batches put client-credentials p99 at 68 ms).
_BATCH = 100
_MAX_BACKOFF_SECONDS = 30.0
_INSERT = sa.insert(audit_events)

Row = dict[str, Any]


@dataclass(slots=True)
class _Prepared:
    """A completed event, its id, and its row to insert."""

    id: UUID
    event: AuditEvent
    row: Row


class _EventIds:
    """UUIDv7 ids (RFC 9562 s5.7) with a 42-bit counter (s6.2, method 1): the ids one
    process makes sort in the order it made them, so events of the same instant (one
    transaction's, or a test clock's) list in the order they happened, and new rows land
    at the end of the primary key's index."""

    def __init__(self) -> None:
        self._ms = 0
        self._counter = 0

    def __call__(self) -> UUID:
        ms = time.time_ns() // 1_000_000
        if ms > self._ms:
            # A random start below half the range leaves room to count up within this ms.
            self._ms, self._counter = ms, secrets.randbits(41)
        else:
            self._counter += 1
            if self._counter >> 42:  # 2**41 ids in one millisecond: borrow the next one
                self._ms, self._counter = self._ms + 1, secrets.randbits(41)
        value = (
            (self._ms & (1 << 48) - 1) << 80
            | 0x7 << 76
            | (self._counter >> 30) << 64
            | 0b10 << 62
            | (self._counter & (1 << 30) - 1) << 32
            | secrets.randbits(32)
        )
        return UUID(int=value)


new_event_id = _EventIds()


def _prepare(event: AuditEvent) -> _Prepared:
    event_id = new_event_id()
    assert event.at is not None  # noqa: S101 - completed events have their time
    row = {
        "id": event_id,
        "time": event.at,
        "type": event.type,
        "outcome": event.outcome,
        "actor_kind": event.actor.kind,
        "actor_id": event.actor.id,
        "subject_kind": event.subject.kind if event.subject else None,
        "subject_id": event.subject.id if event.subject else None,
        "ip": event.ip,
        "user_agent": event.user_agent,
        "request_id": event.request_id,
        "detail": json.dumps(dict(event.detail), separators=(",", ":"), sort_keys=True),
    }
    return _Prepared(event_id, event, row)


def _log_lines(prepared: list[_Prepared]) -> None:
    # Built only when someone listens: a CLI import of 100,000 devices logs nothing.
    if audit_log.isEnabledFor(logging.INFO):
        for item in prepared:
            # ensure_ascii: the line stays plain ASCII whatever a user agent or a name holds.
            document = event_document(item.id, item.event)
            audit_log.info("%s", json.dumps(document, separators=(",", ":")))


@dataclass(slots=True, eq=False)
class _Stage:
    """Events staged by one `with recorder.staged(...)` block of one task."""

    prepared: list[_Prepared]
    task: asyncio.Task[Any] | None
    parent: _Stage | None
    taken: bool = False


_staged: ContextVar[_Stage | None] = ContextVar("gatehouse_audit_staged", default=None)


class SqlAuditRecorder:
    """The server's `AuditRecorder`: staged events in their change's transaction, recorded
    ones in batches from a queue; each also one JSON line on `gatehouse.audit`."""

    def __init__(
        self,
        db: Database,
        *,
        clock: Clock,
        max_queued: int = MAX_QUEUED,
        flush_after: float = FLUSH_AFTER_SECONDS,
    ) -> None:
        self._db = db
        self._clock = clock
        self._max_queued = max_queued
        self._flush_after = flush_after
        self._queue: deque[_Prepared] = deque()
        self._writing = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self._failures = 0
        self.dropped = 0
        db.on_commit(self._take_staged)

    # -- the AuditRecorder protocol --------------------------------------------------------

    def record(self, event: AuditEvent) -> None:
        """Queue an event; it reaches storage within about a second."""
        prepared = self._complete(event)
        _log_lines([prepared])
        self._enqueue(prepared)

    @contextmanager
    def staged(self, *events: AuditEvent) -> Iterator[None]:
        """Write `events` in the transaction of the next write this task commits inside
        the block; see the module docstring for what happens otherwise."""
        stage = _Stage(
            prepared=[self._complete(event) for event in events],
            task=_current_task(),
            parent=_staged.get(),
        )
        token = _staged.set(stage)
        try:
            yield
        finally:
            _staged.reset(token)
        # Reached only when the block did not raise: no write took them, record them.
        if not stage.taken:
            stage.taken = True
            _log_lines(stage.prepared)
            for prepared in stage.prepared:
                self._enqueue(prepared)

    # -- the rest ----------------------------------------------------------------------------

    @property
    def queued(self) -> int:
        """Events waiting in memory to be written."""
        return len(self._queue)

    async def flush(self) -> None:
        """Write every queued event now, after any batch already being written.

        Raises:
            StorageUnavailableError: the database is down (the events stay queued).
        """
        while True:
            async with self._writing:
                if not self._queue:
                    return
                await self._write_batch()
            await asyncio.sleep(0)  # let the requests that queued meanwhile run

    async def close(self) -> None:
        """Stop the background writer and write what is still queued (once: events that
        cannot be written now are reported, then lost with the process)."""
        self._closed = True
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        try:
            await self.flush()
        except Exception:
            log.warning(
                "%d audit events could not be stored at shutdown", len(self._queue), exc_info=True
            )

    def _complete(self, event: AuditEvent) -> _Prepared:
        return _prepare(complete(event, now=self._clock.now(), context=request_context()))

    async def _take_staged(self, conn: Connection) -> Callable[[], None] | None:
        """The pre-commit hook: insert the events the current task staged, in `conn`'s
        transaction; mark them taken (and log them) once it has committed."""
        stage = _staged.get()
        if stage is None:
            return None
        task = _current_task()
        pending: list[_Stage] = []
        while stage is not None:
            if stage.task is task and not stage.taken:
                pending.append(stage)
            stage = stage.parent
        if not pending:
            return None
        prepared = [item for stage in reversed(pending) for item in stage.prepared]
        if prepared:
            await conn.execute(_INSERT, [item.row for item in prepared])

        def committed() -> None:
            for done in pending:
                done.taken = True
            _log_lines(prepared)

        return committed

    def _enqueue(self, prepared: _Prepared) -> None:
        if len(self._queue) >= self._max_queued:
            self._queue.popleft()
            self._note_dropped(1)
        self._queue.append(prepared)
        if self._task is None and not self._closed:
            # Without a running loop (a synchronous caller), flush or close writes them.
            # A context of its own: the writer serves no request, so its log lines must not
            # carry the request id of whichever request happened to queue first.
            with contextlib.suppress(RuntimeError):
                self._task = asyncio.get_running_loop().create_task(
                    self._drain(), context=contextvars.Context()
                )

    def _note_dropped(self, count: int) -> None:
        before = self.dropped
        self.dropped += count
        # Warn at the first drop, then once per thousand: a long outage must not flood logs.
        if before == 0 or before // 1000 != self.dropped // 1000:
            log.warning(
                "audit queue full (%d events, database unavailable): dropped the oldest; "
                "%d dropped since start",
                self._max_queued,
                self.dropped,
            )

    async def _drain(self) -> None:
        """The background writer: batches every `flush_after` while events are queued,
        backing off while the database is down."""
        delay = self._flush_after
        try:
            while self._queue:
                await asyncio.sleep(delay)
                try:
                    await self.flush()
                except Exception:  # a background writer must outlive any one failure
                    self._failures += 1
                    if self._failures == 1:
                        log.warning(
                            "storing audit events failed (%d queued); retrying",
                            len(self._queue),
                            exc_info=True,
                        )
                    delay = min(self._flush_after * 2**self._failures, _MAX_BACKOFF_SECONDS)
                else:
                    if self._failures:
                        log.info("audit events stored again after %d failures", self._failures)
                    self._failures = 0
                    delay = self._flush_after
        finally:
            self._task = None

    async def _write_batch(self) -> None:
        batch = [self._queue.popleft() for _ in range(min(_BATCH, len(self._queue)))]
        try:
            async with self._db.write() as conn:
                await conn.execute(self._insert_new(), [item.row for item in batch])
        except BaseException:
            # Back to the front, in order; the oldest go first if the queue overflowed.
            self._queue.extendleft(reversed(batch))
            if (excess := len(self._queue) - self._max_queued) > 0:
                for _ in range(excess):
                    self._queue.popleft()
                self._note_dropped(excess)
            raise

    def _insert_new(self) -> sa.Insert:
        if self._db.is_sqlite:
            return sqlite_insert(audit_events).on_conflict_do_nothing(index_elements=["id"])
        return postgresql_insert(audit_events).on_conflict_do_nothing(index_elements=["id"])


def _current_task() -> asyncio.Task[Any] | None:
    try:
        return asyncio.current_task()
    except RuntimeError:  # no running loop
        return None


def _stored(row: Any) -> StoredEvent:
    detail = json.loads(row.detail)
    subject = (
        Subject(row.subject_kind, row.subject_id)
        if row.subject_kind is not None and row.subject_id is not None
        else None
    )
    event = AuditEvent(
        type=row.type,
        outcome=row.outcome,
        actor=Actor(kind=cast(Any, row.actor_kind), id=row.actor_id),
        subject=subject,
        detail=detail if isinstance(detail, dict) else {},
        at=row.time,
        ip=row.ip,
        user_agent=row.user_agent,
        request_id=row.request_id,
    )
    return StoredEvent(id=row.id, event=event)


class SqlAuditRepository:
    """The stored trail: searched newest first, pruned by age."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def search(
        self, query: AuditQuery, *, limit: int, before: tuple[datetime, UUID] | None
    ) -> list[StoredEvent]:
        t = audit_events.c
        stmt = sa.select(audit_events).order_by(t.time.desc(), t.id.desc()).limit(limit)
        # Each equality filter has an index (column, time, id), read backwards.
        if query.type is not None:
            stmt = stmt.where(t.type == query.type)
        if query.actor_id is not None:
            stmt = stmt.where(t.actor_id == query.actor_id)
        if query.subject_id is not None:
            stmt = stmt.where(t.subject_id == query.subject_id)
        if query.since is not None:
            stmt = stmt.where(t.time >= query.since)
        if query.until is not None:
            stmt = stmt.where(t.time < query.until)
        if before is not None:
            at, last_id = before
            stmt = stmt.where(sa.or_(t.time < at, sa.and_(t.time == at, t.id < last_id)))
        async with self._db.read() as conn:
            rows = (await conn.execute(stmt)).all()
        return [_stored(row) for row in rows]

    async def delete_before(self, before: datetime, *, limit: int) -> int:
        t = audit_events.c
        oldest = sa.select(t.id).where(t.time < before).order_by(t.time).limit(limit)
        async with self._db.write() as conn:
            result = await conn.execute(sa.delete(audit_events).where(t.id.in_(oldest)))
        return int(result.rowcount)
