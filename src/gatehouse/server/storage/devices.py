"""The device repository on SQLAlchemy Core.

Seats are counted, never stored: a license's seats taken are its devices that are not
revoked. Writes that bind devices to a license lock the license row first (`SELECT ... FOR
UPDATE` on PostgreSQL; on SQLite every write transaction holds the database's one write
lock from BEGIN IMMEDIATE), so concurrent activations are counted one after the other and
never take more seats than the license has.
"""

from __future__ import annotations

import asyncio
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any
from uuid import UUID

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from gatehouse.server.devices.models import (
    Device,
    DeviceFilter,
    DeviceRecord,
    DeviceStatus,
    License,
    Presented,
)
from gatehouse.server.devices.repository import Activation, DeviceRow
from gatehouse.server.errors import (
    ConflictError,
    DeviceExistsError,
    LicenseFullError,
    NotFoundError,
    UnknownDeviceError,
)
from gatehouse.server.storage.database import Connection, Database
from gatehouse.server.storage.invalidations import InvalidationLog
from gatehouse.server.storage.licenses import LICENSE_COLUMNS, license_from_row, seats_of
from gatehouse.server.storage.paging import after_clause
from gatehouse.server.storage.tables import device_components, devices, licenses

_DEVICE_COLUMNS = (
    devices.c.id,
    devices.c.label,
    devices.c.status,
    devices.c.owner_id,
    devices.c.license_id,
    devices.c.activated,
    devices.c.created_at,
    devices.c.updated_at,
    devices.c.last_seen_at,
)


def _record_query(where: sa.ColumnElement[bool], *, components: bool) -> sa.Select[Any]:
    """A device with its license (and its components: then one row per component)."""
    columns: list[Any] = [*_DEVICE_COLUMNS, devices.c.fingerprint_digest, *LICENSE_COLUMNS]
    joined = devices.outerjoin(licenses, licenses.c.id == devices.c.license_id)
    if components:
        columns += [
            device_components.c.name.label("c_name"),
            device_components.c.digest.label("c_digest"),
        ]
        joined = joined.outerjoin(device_components, device_components.c.device_id == devices.c.id)
    return sa.select(*columns).select_from(joined).where(where)


# The lookup of every verify that misses the cache: one row, built once. An exact match
# needs no components; tolerance matching reads them by id.
_BY_FINGERPRINT = _record_query(
    devices.c.fingerprint_digest == sa.bindparam("digest"), components=False
)
_BY_ID = _record_query(devices.c.id == sa.bindparam("device_id"), components=True)
_TOUCH_CHUNK = 200
# Devices with one component digest; more than this many make it no identity at all.
_SHARING = (
    sa.select(device_components.c.device_id)
    .where(device_components.c.digest == sa.bindparam("digest"))
    .limit(16)
)
_TOUCH = (
    sa.update(devices)
    .where(
        devices.c.id == sa.bindparam("device_id"),
        sa.or_(
            devices.c.last_seen_at.is_(None),
            devices.c.last_seen_at < sa.bindparam("not_since", type_=devices.c.last_seen_at.type),
        ),
    )
    .values(last_seen_at=sa.bindparam("now", type_=devices.c.last_seen_at.type))
)


def _device(row: Any) -> Device:
    return Device(
        id=row.id,
        label=row.label,
        status=DeviceStatus(row.status),
        owner_id=row.owner_id,
        license_id=row.license_id,
        activated=row.activated,
        created_at=row.created_at,
        updated_at=row.updated_at,
        last_seen_at=row.last_seen_at,
    )


def _fold(rows: Sequence[Any]) -> DeviceRecord | None:
    if not rows:
        return None
    first = rows[0]
    return DeviceRecord(
        device=_device(first),
        license=license_from_row(first) if first.l_id is not None else None,
        fingerprint_digest=first.fingerprint_digest,
        components={row.c_name: row.c_digest for row in rows if row.c_name is not None}
        if "c_name" in first._fields
        else None,
    )


def _component_rows(device_id: UUID, components: Mapping[str, bytes]) -> list[dict[str, Any]]:
    return [{"device_id": device_id, "name": n, "digest": d} for n, d in components.items()]


async def _insert(conn: Connection, rows: Sequence[DeviceRow]) -> None:
    await conn.execute(
        sa.insert(devices),
        [
            {
                "id": row.device.id,
                "fingerprint_digest": row.fingerprint_digest,
                "label": row.device.label,
                "status": row.device.status.value,
                "owner_id": row.device.owner_id,
                "license_id": row.device.license_id,
                "activated": row.device.activated,
                "created_at": row.device.created_at,
                "updated_at": row.device.updated_at,
                "last_seen_at": row.device.last_seen_at,
            }
            for row in rows
        ],
    )
    components = [c for row in rows for c in _component_rows(row.device.id, row.components)]
    if components:
        await conn.execute(sa.insert(device_components), components)


async def _locked_license(conn: Connection, license_id: UUID) -> tuple[License, int] | None:
    """The license row, locked until the transaction ends, and its seats taken."""
    row = (
        await conn.execute(
            sa.select(*LICENSE_COLUMNS).where(licenses.c.id == license_id).with_for_update()
        )
    ).one_or_none()
    if row is None:
        return None
    seats = (await conn.execute(sa.select(seats_of(license_id)))).scalar_one()
    return license_from_row(row, seats), seats


class SqlDeviceRepository:
    """Devices and their component digests."""

    def __init__(self, db: Database, invalidations: InvalidationLog) -> None:
        self._db = db
        self._log = invalidations

    async def add(self, rows: Sequence[DeviceRow], *, now: datetime) -> None:
        wanted: dict[UUID, int] = defaultdict(int)
        for row in rows:
            if row.device.license_id is not None:
                wanted[row.device.license_id] += 1
        try:
            async with self._db.write() as conn:
                for license_id, count in sorted(wanted.items()):
                    found = await _locked_license(conn, license_id)
                    if found is None:
                        raise NotFoundError("No such license.")
                    if found[1] + count > found[0].max_devices:
                        raise LicenseFullError
                await _insert(conn, rows)
        except IntegrityError as exc:
            raise DeviceExistsError from exc

    async def existing(self, digests: Iterable[bytes]) -> set[bytes]:
        wanted = list(digests)
        found: set[bytes] = set()
        async with self._db.read() as conn:
            # In chunks: SQLite allows a bounded number of parameters per statement.
            for start in range(0, len(wanted), 500):
                stmt = sa.select(devices.c.fingerprint_digest).where(
                    devices.c.fingerprint_digest.in_(wanted[start : start + 500])
                )
                found.update((await conn.execute(stmt)).scalars())
        return found

    async def find_by_fingerprint(self, digest: bytes) -> DeviceRecord | None:
        async with self._db.read() as conn:
            return _fold((await conn.execute(_BY_FINGERPRINT, {"digest": digest})).all())

    async def find_by_id(self, device_id: UUID) -> DeviceRecord | None:
        async with self._db.read() as conn:
            return _fold((await conn.execute(_BY_ID, {"device_id": device_id})).all())

    async def candidates(self, component_digests: Iterable[bytes]) -> list[tuple[UUID, int]]:
        # One index range per component, each cut at a few rows: a component that many
        # machines share (a common CPU model) identifies none of them, and must not turn a
        # verify into a scan of the table. A machine is still found through any of its
        # rarer components.
        shared: Counter[UUID] = Counter()
        async with self._db.read() as conn:
            for digest in dict.fromkeys(component_digests):
                rows = await conn.execute(_SHARING, {"digest": digest})
                shared.update(rows.scalars())
        return shared.most_common(8)

    async def search(
        self, where: DeviceFilter, *, limit: int, after: tuple[datetime, UUID] | None
    ) -> list[Device]:
        stmt = sa.select(*_DEVICE_COLUMNS).order_by(devices.c.created_at, devices.c.id).limit(limit)
        if where.owner_id is not None:
            stmt = stmt.where(devices.c.owner_id == where.owner_id)
        if where.license_id is not None:
            stmt = stmt.where(devices.c.license_id == where.license_id)
        if where.status is not None:
            stmt = stmt.where(devices.c.status == where.status.value)
        if where.seen_before is not None:
            stmt = stmt.where(devices.c.last_seen_at < where.seen_before)
        if where.seen_after is not None:
            stmt = stmt.where(devices.c.last_seen_at > where.seen_after)
        if after is not None:
            stmt = stmt.where(after_clause(devices.c.created_at, devices.c.id, after))
        async with self._db.read() as conn:
            return [_device(row) for row in (await conn.execute(stmt)).all()]

    async def update(
        self, device_id: UUID, *, label: str | None, status: DeviceStatus | None, now: datetime
    ) -> Device | None:
        values: dict[str, Any] = {"updated_at": now}
        if label is not None:
            values["label"] = label
        if status is not None:
            values["status"] = status.value
        async with self._db.write() as conn:
            current = (
                await conn.execute(sa.select(devices.c.status).where(devices.c.id == device_id))
            ).scalar_one_or_none()
            if current is None:
                return None
            if current == DeviceStatus.REVOKED and status not in (None, DeviceStatus.REVOKED):
                raise ConflictError("A revoked device stays revoked; delete it to register again.")
            await conn.execute(sa.update(devices).where(devices.c.id == device_id).values(values))
            await self._log.record(conn, [device_id], now)
            row = (
                await conn.execute(sa.select(*_DEVICE_COLUMNS).where(devices.c.id == device_id))
            ).one()
        self._log.publish([device_id])
        return _device(row)

    async def delete(self, device_id: UUID, *, now: datetime) -> bool:
        async with self._db.write() as conn:
            result = await conn.execute(sa.delete(devices).where(devices.c.id == device_id))
            if not result.rowcount:
                return False
            await self._log.record(conn, [device_id], now)
        self._log.publish([device_id])
        return True

    async def rebind(self, device_id: UUID, presented: Presented, *, now: datetime) -> bool:
        try:
            async with self._db.write() as conn:
                await conn.execute(
                    sa.update(devices)
                    .where(devices.c.id == device_id)
                    .values(fingerprint_digest=presented.fingerprint_digest, updated_at=now)
                )
                await conn.execute(
                    sa.delete(device_components).where(device_components.c.device_id == device_id)
                )
                if presented.components:
                    await conn.execute(
                        sa.insert(device_components),
                        _component_rows(device_id, presented.components),
                    )
                await self._log.record(conn, [device_id], now)
        except IntegrityError:
            return False
        self._log.publish([device_id])
        return True

    async def touch(self, seen: Mapping[UUID, tuple[datetime, datetime]]) -> None:
        rows = [
            {"device_id": device_id, "now": now, "not_since": not_since}
            for device_id, (now, not_since) in seen.items()
        ]
        # A few hundred rows per transaction: the event loop (and the write lock) is never
        # held for long, whatever the size of the fleet that checked in.
        for start in range(0, len(rows), _TOUCH_CHUNK):
            async with self._db.write() as conn:
                await conn.execute(_TOUCH, rows[start : start + _TOUCH_CHUNK])
            await asyncio.sleep(0)

    async def activate(
        self, license_id: UUID, row: DeviceRow, *, match_id: UUID | None, now: datetime
    ) -> Activation:
        try:
            async with self._db.write() as conn:
                outcome = await self._activate(conn, license_id, row, match_id, now)
        except IntegrityError as exc:
            raise DeviceExistsError from exc
        if not outcome.created:
            self._log.publish([outcome.record.device.id])
        return outcome

    async def _activate(
        self,
        conn: Connection,
        license_id: UUID,
        row: DeviceRow,
        match_id: UUID | None,
        now: datetime,
    ) -> Activation:
        # Step 1: lock the license; every activation of it waits here for the one before.
        locked = await _locked_license(conn, license_id)
        if locked is None:
            raise UnknownDeviceError
        found, seats = locked
        if (refusal := found.refusal(now)) is not None:
            raise refusal
        # Step 2: the machine, if it is registered already (by id after a tolerance match).
        query = _BY_ID if match_id is not None else _BY_FINGERPRINT
        params = (
            {"device_id": match_id} if match_id is not None else {"digest": row.fingerprint_digest}
        )
        existing = _fold((await conn.execute(query, params)).all())
        if existing is not None:
            if (refusal := existing.device.refusal()) is not None:
                raise refusal
            bound = DeviceRecord(
                existing.device, found, existing.fingerprint_digest, existing.components
            )
            if existing.device.license_id == license_id:
                return Activation(record=bound, created=False, seat_taken=False)
            if seats >= found.max_devices:
                raise LicenseFullError
            await conn.execute(
                sa.update(devices)
                .where(devices.c.id == existing.device.id)
                .values(license_id=license_id, updated_at=now)
            )
            await self._log.record(conn, [existing.device.id], now)
            moved = DeviceRecord(
                replace(existing.device, license_id=license_id, updated_at=now),
                found,
                existing.fingerprint_digest,
                existing.components,
            )
            return Activation(record=moved, created=False, seat_taken=True)
        # Step 3: a new machine takes a seat, if one is free.
        if seats >= found.max_devices:
            raise LicenseFullError
        await _insert(conn, [row])
        record = DeviceRecord(row.device, found, row.fingerprint_digest, row.components)
        return Activation(record=record, created=True, seat_taken=True)

    async def release(self, device_id: UUID, *, license_id: UUID | None, now: datetime) -> bool:
        async with self._db.write() as conn:
            row = (
                await conn.execute(
                    sa.select(devices.c.license_id, devices.c.activated).where(
                        devices.c.id == device_id
                    )
                )
            ).one_or_none()
            if row is None or row.license_id is None:
                return False
            if license_id is not None and row.license_id != license_id:
                return False
            if row.activated:
                await conn.execute(sa.delete(devices).where(devices.c.id == device_id))
            else:
                await conn.execute(
                    sa.update(devices)
                    .where(devices.c.id == device_id)
                    .values(license_id=None, updated_at=now)
                )
            await self._log.record(conn, [device_id], now)
        self._log.publish([device_id])
        return True

    async def silent_since(self, license_id: UUID, before: datetime) -> list[UUID]:
        stmt = sa.select(devices.c.id).where(
            devices.c.license_id == license_id,
            devices.c.status != DeviceStatus.REVOKED.value,
            sa.func.coalesce(devices.c.last_seen_at, devices.c.created_at) < before,
        )
        async with self._db.read() as conn:
            return list((await conn.execute(stmt)).scalars())
