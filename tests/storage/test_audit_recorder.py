"""The audit recorder on a real database (SQLite and PostgreSQL): staged events commit or
roll back with their write, recorded ones reach storage in batches, every event is cleaned
and also logged, and the queue is bounded while the database is down."""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from gatehouse.server.audit.models import Actor, AuditEvent, Subject
from gatehouse.server.clock import ManualClock
from gatehouse.server.context import RequestContext, current_request
from gatehouse.server.errors import StorageUnavailableError
from gatehouse.server.logs import JsonFormatter
from gatehouse.server.storage import migrate
from gatehouse.server.storage.audit import SqlAuditRecorder
from gatehouse.server.storage.database import Connection, Database
from gatehouse.server.storage.tables import audit_events, principal_invalidations
from gatehouse.server.wiring import Services


class Boom(Exception):
    pass


def event(event_type: str = "user.deleted", **detail: Any) -> AuditEvent:
    return AuditEvent(
        type=event_type,
        outcome="success",
        actor=Actor(kind="user", id="admin-1"),
        subject=Subject("user", "user-1"),
        detail=detail,
    )


async def change(db: Database) -> None:
    """One write transaction that changes a row."""
    async with db.write() as conn:
        await conn.execute(
            sa.insert(principal_invalidations),
            {"user_id": uuid.uuid4(), "created_at": ManualClock().now()},
        )


async def rows(db: Database) -> list[Any]:
    async with db.read() as conn:
        return list((await conn.execute(sa.select(audit_events))).all())


async def types(db: Database) -> list[str]:
    return sorted(row.type for row in await rows(db))


@pytest.fixture
async def recorder(services: Services) -> SqlAuditRecorder:
    return services.audit_recorder


async def test_a_staged_event_is_stored_by_the_write_inside_its_block(
    services: Services, recorder: SqlAuditRecorder
) -> None:
    """The event is in the database as soon as the write returns, nothing is queued."""
    with recorder.staged(event("user.deleted")):
        await change(services.db)
        assert await types(services.db) == ["user.deleted"]
    assert recorder.queued == 0
    assert await types(services.db) == ["user.deleted"]


async def test_a_block_that_raises_before_any_write_drops_its_events(
    services: Services, recorder: SqlAuditRecorder
) -> None:
    """Nothing changed, so nothing is recorded, now or later."""
    with pytest.raises(Boom), recorder.staged(event()):
        raise Boom
    await recorder.flush()
    assert await rows(services.db) == []


async def test_a_write_that_rolls_back_takes_its_staged_events_with_it(
    services: Services, recorder: SqlAuditRecorder
) -> None:
    """The change and its record commit or roll back together."""

    async def change_then_fail() -> None:
        with recorder.staged(event()):
            async with services.db.write() as conn:
                await conn.execute(
                    sa.insert(principal_invalidations),
                    {"user_id": uuid.uuid4(), "created_at": ManualClock().now()},
                )
                raise Boom

    with pytest.raises(Boom):
        await change_then_fail()
    await recorder.flush()
    assert await rows(services.db) == []
    async with services.db.read() as conn:
        assert (await conn.execute(sa.select(principal_invalidations))).all() == []


async def test_a_block_without_a_write_records_its_events_as_record_does(
    services: Services, recorder: SqlAuditRecorder
) -> None:
    """No write took them: they are queued, and stored by the next flush."""
    with recorder.staged(event("user.activated")):
        pass
    assert recorder.queued == 1
    await recorder.flush()
    assert await types(services.db) == ["user.activated"]


async def test_a_write_that_changes_no_row_does_not_take_staged_events(
    services: Services, recorder: SqlAuditRecorder
) -> None:
    """An UPDATE that matches nothing is no change to record: the events wait for a write
    that changes something (or the end of the block)."""
    with recorder.staged(event("user.deactivated")):
        async with services.db.write() as conn:
            await conn.execute(
                sa.update(principal_invalidations)
                .where(principal_invalidations.c.seq == -1)
                .values(created_at=ManualClock().now())
            )
        assert await rows(services.db) == []
        await change(services.db)
        assert await types(services.db) == ["user.deactivated"]
    assert recorder.queued == 0


async def test_only_the_first_write_of_a_block_takes_its_events(
    services: Services, recorder: SqlAuditRecorder
) -> None:
    """Two writes in one block: the events are stored once."""
    with recorder.staged(event(), event("user.roles_changed")):
        await change(services.db)
        await change(services.db)
    await recorder.flush()
    assert await types(services.db) == ["user.deleted", "user.roles_changed"]


async def test_nested_blocks_are_taken_by_the_one_write(
    services: Services, recorder: SqlAuditRecorder
) -> None:
    """An inner service stages its own event inside an outer one: one transaction has both."""
    with recorder.staged(event("user.created")), recorder.staged(event("user.registered")):
        await change(services.db)
    assert recorder.queued == 0
    assert await types(services.db) == ["user.created", "user.registered"]


async def test_a_task_started_inside_the_block_never_takes_its_events(
    services: Services, recorder: SqlAuditRecorder
) -> None:
    """A background task copies the context but is another task: its write commits without
    the events, which wait for the block's own write."""
    with recorder.staged(event("api_key.revoked")):
        await asyncio.create_task(change(services.db))
        assert await rows(services.db) == []
        await change(services.db)
        assert await types(services.db) == ["api_key.revoked"]


async def test_a_failing_hook_rolls_the_change_back(database_url: str) -> None:
    """Should the record fail to insert, the change fails with it (same transaction)."""
    db = Database(database_url)

    async def refuse(_conn: Connection) -> None:
        raise Boom

    try:
        async with db.write() as conn:
            await conn.execute(sa.delete(principal_invalidations))
        db.on_commit(refuse)
        with pytest.raises(Boom):
            await change(db)
        async with db.read() as conn:
            assert (await conn.execute(sa.select(principal_invalidations))).all() == []
    finally:
        await db.dispose()


async def test_recorded_events_reach_storage_without_a_flush(
    services: Services, recorder: SqlAuditRecorder
) -> None:
    """The background writer stores a recorded event shortly after (well within a second
    in practice; polled here, with a generous bound, rather than slept on)."""
    recorder.record(event("login.failed"))
    deadline = time.monotonic() + 10
    # The database is what is polled; there is no event of ours to wait on.
    while not await rows(services.db) and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.05)
    assert await types(services.db) == ["login.failed"]
    assert recorder.queued == 0


async def test_many_recorded_events_are_written_in_batches_in_order(
    database_url: str, tmp_path: Path
) -> None:
    """More than one batch (100 rows) of events: all stored, their ids in the order recorded."""
    # On SQLite a file of its own: a thousand rows would leave the shared file with free
    # pages that other tests expect to have to grow.
    url = f"sqlite:///{tmp_path / 'batches.db'}" if database_url.startswith("sqlite") else None
    db = Database(url or database_url)
    recorder = SqlAuditRecorder(db, clock=ManualClock(), flush_after=60)
    try:
        if url:
            await migrate.upgrade(db)
        async with db.write() as conn:
            await conn.execute(sa.delete(audit_events))
        for n in range(1203):
            recorder.record(event("api_key.used", n=n))
        await recorder.flush()
        stored = await rows(db)
        assert len(stored) == 1203
        by_id = sorted(stored, key=lambda row: row.id)
        assert [json.loads(row.detail)["n"] for row in by_id] == list(range(1203))
        async with db.write() as conn:
            await conn.execute(sa.delete(audit_events))
    finally:
        await recorder.close()
        await db.dispose()


async def test_an_event_takes_its_time_and_origin_from_the_clock_and_the_request(
    services: Services, recorder: SqlAuditRecorder, clock: ManualClock
) -> None:
    """Unset `at`, `ip`, `user_agent` and `request_id` come from the recorder's clock and
    the request being served; an actor's own address wins over the request's."""
    token = current_request.set(RequestContext("req-1", ip="198.51.100.4", user_agent="curl/8"))
    try:
        recorder.record(event("login.failed"))
        recorder.record(
            AuditEvent(
                type="device.verify_failed",
                outcome="failure",
                actor=Actor("anonymous", ip="192.0.2.9"),
            )
        )
    finally:
        current_request.reset(token)
    await recorder.flush()
    stored = {row.type: row for row in await rows(services.db)}
    assert stored["login.failed"].time == clock.now()
    assert stored["login.failed"].ip == "198.51.100.4"
    assert stored["login.failed"].user_agent == "curl/8"
    assert stored["login.failed"].request_id == "req-1"
    assert stored["device.verify_failed"].ip == "192.0.2.9"


async def test_user_controlled_strings_are_stored_cleaned_and_cut(
    services: Services, recorder: SqlAuditRecorder
) -> None:
    """Control characters, line separators and bidi overrides are stripped; the user agent
    is cut at 512, detail strings at 256; detail keeps only scalar values."""
    hostile = 'evil\r\n{"type":"forged"}\x1b[31m\u2028\u202e' + "x" * 1000
    recorder.record(
        AuditEvent(
            type="login.failed",
            outcome="failure",
            actor=Actor.anonymous(),
            subject=Subject("username", 'o\'brien "the admin"'),
            user_agent=hostile,
            detail={
                "name": hostile,
                "count": 3,
                "flag": True,
                "none": None,
                "id": uuid.UUID(int=1),
            },
        )
    )
    await recorder.flush()
    (row,) = await rows(services.db)
    assert row.user_agent.startswith('evil{"type":"forged"}[31m')
    assert len(row.user_agent) == 512
    assert not any(ch in row.user_agent for ch in "\r\n\x1b\u2028\u202e")
    detail = json.loads(row.detail)
    assert len(detail["name"]) == 256
    assert "\n" not in detail["name"]
    assert detail["count"] == 3
    assert detail["flag"] is True
    assert detail["none"] is None
    assert detail["id"] == str(uuid.UUID(int=1))
    assert row.subject_id == 'o\'brien "the admin"'


async def test_every_event_is_also_one_json_line_on_the_audit_logger(
    services: Services, recorder: SqlAuditRecorder, caplog: pytest.LogCaptureFixture
) -> None:
    """Recorded and staged events alike, each with the id it is stored under, plain ASCII
    whatever the input held, and a staged event only once its transaction committed."""
    caplog.set_level(logging.INFO, logger="gatehouse.audit")
    recorder.record(
        AuditEvent(
            type="login.failed",
            outcome="failure",
            actor=Actor.anonymous(),
            subject=Subject("username", 'zoë "quoted"'),
        )
    )
    with recorder.staged(event("user.deleted")):
        await change(services.db)
    with pytest.raises(Boom), recorder.staged(event("user.activated")):
        raise Boom
    await recorder.flush()
    lines = [r.getMessage() for r in caplog.records if r.name == "gatehouse.audit"]
    assert all(line.isascii() and "\n" not in line for line in lines)
    logged = [json.loads(line) for line in lines]
    assert [e["type"] for e in logged] == ["login.failed", "user.deleted"]
    assert logged[0]["subject"] == {"kind": "username", "id": 'zoë "quoted"'}
    stored_ids = {str(row.id) for row in await rows(services.db)}
    assert {e["id"] for e in logged} == stored_ids


@pytest.fixture
async def unreachable() -> AsyncIterator[Database]:
    """A database nothing listens for (a closed port): every transaction fails."""
    db = Database("postgresql+asyncpg://postgres@127.0.0.1:9/none")
    try:
        yield db
    finally:
        await db.dispose()


async def test_while_the_database_is_down_the_queue_keeps_the_newest_events(
    unreachable: Database,
) -> None:
    """Past `max_queued`, the oldest events are dropped and counted; flushing fails with
    503's error and keeps what is queued."""
    recorder = SqlAuditRecorder(unreachable, clock=ManualClock(), max_queued=10, flush_after=60)
    for n in range(15):
        recorder.record(event("login.failed", n=n))
    assert recorder.queued == 10
    assert recorder.dropped == 5
    with pytest.raises(StorageUnavailableError):
        await recorder.flush()
    assert recorder.queued == 10
    assert recorder.dropped == 5
    await recorder.close()


async def test_the_background_writer_logs_outside_the_request_that_queued_first(
    unreachable: Database,
) -> None:
    """The writer started by an event a request recorded serves no request: its warning
    about the database being down carries no request id (JSON formatted as it is logged)."""
    lines: list[str] = []

    class Formatting(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(JsonFormatter().format(record))

    handler = Formatting()
    logger = logging.getLogger("gatehouse")
    logger.addHandler(handler)
    recorder = SqlAuditRecorder(unreachable, clock=ManualClock(), flush_after=0.01)
    try:
        token = current_request.set(RequestContext(request_id="req-first"))
        try:
            recorder.record(event("login.failed"))
        finally:
            current_request.reset(token)
        deadline = time.monotonic() + 10
        while not lines and time.monotonic() < deadline:  # noqa: ASYNC110 - a log line to see
            await asyncio.sleep(0.01)
    finally:
        logger.removeHandler(handler)
        await recorder.close()
    (line, *_) = [json.loads(text) for text in lines]
    assert line["message"].startswith("storing audit events failed")
    assert "request_id" not in line


async def test_events_queued_during_an_outage_are_stored_once_it_ends(tmp_path: Path) -> None:
    """An SQLite file that cannot be opened (its folder is missing) fails every write; once
    the folder and schema exist, the same recorder stores everything it kept."""
    folder = tmp_path / "later"
    db = Database(f"sqlite:///{folder / 'audit.db'}")
    recorder = SqlAuditRecorder(db, clock=ManualClock(), flush_after=60)
    try:
        for n in range(3):
            recorder.record(event("login.failed", n=n))
        with pytest.raises(StorageUnavailableError):
            await recorder.flush()
        folder.mkdir()
        await migrate.upgrade(db)
        await recorder.flush()
        assert recorder.queued == 0
        assert [
            json.loads(row.detail)["n"] for row in sorted(await rows(db), key=lambda r: r.id)
        ] == [0, 1, 2]
    finally:
        await recorder.close()
        await db.dispose()


async def test_close_writes_what_is_still_queued(database_url: str) -> None:
    """Shutting down stores the queue (no event recorded just before is lost)."""
    db = Database(database_url)
    recorder = SqlAuditRecorder(db, clock=ManualClock(), flush_after=60)
    try:
        async with db.write() as conn:
            await conn.execute(sa.delete(audit_events))
        recorder.record(event("logout", marker="close"))
        await recorder.close()
        assert [json.loads(row.detail).get("marker") for row in await rows(db)] == ["close"]
    finally:
        await db.dispose()


async def test_the_clock_sets_the_time_of_staged_events_when_they_are_staged(
    services: Services, recorder: SqlAuditRecorder, clock: ManualClock
) -> None:
    """An event's time is when it happened (staged), not when its write came."""
    staged_at = clock.now()
    with recorder.staged(event()):
        clock.advance(timedelta(seconds=30))
        await change(services.db)
    (row,) = await rows(services.db)
    assert row.time == staged_at
