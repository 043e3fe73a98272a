"""The license repository on SQLAlchemy Core."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any
from uuid import UUID

import sqlalchemy as sa

from gatehouse.server.devices.models import License, LicenseChanges, LicensePolicy, LicenseStatus
from gatehouse.server.storage.database import Connection, Database
from gatehouse.server.storage.invalidations import InvalidationLog
from gatehouse.server.storage.paging import after_clause
from gatehouse.server.storage.tables import devices, licenses

LICENSE_COLUMNS = (
    licenses.c.id.label("l_id"),
    licenses.c.product,
    licenses.c.max_devices,
    licenses.c.owner_id.label("l_owner_id"),
    licenses.c.status.label("l_status"),
    licenses.c.features,
    licenses.c.policy,
    licenses.c.expires_at.label("l_expires_at"),
    licenses.c.created_at.label("l_created_at"),
    licenses.c.updated_at.label("l_updated_at"),
)


def seats_of(license_id: Any) -> sa.ScalarSelect[int]:
    """Seats taken on a license: its devices that are not revoked."""
    return (
        sa.select(sa.func.count())
        .select_from(devices)
        .where(devices.c.license_id == license_id, devices.c.status != "revoked")
        .scalar_subquery()
    )


_SEATS = seats_of(licenses.c.id).label("seats_used")


def license_from_row(row: Any, seats: int = 0) -> License:
    return License(
        id=row.l_id,
        product=row.product,
        max_devices=row.max_devices,
        owner_id=row.l_owner_id,
        status=LicenseStatus(row.l_status),
        features=tuple(json.loads(row.features)),
        policy=LicensePolicy.of(json.loads(row.policy)),
        expires_at=row.l_expires_at,
        created_at=row.l_created_at,
        updated_at=row.l_updated_at,
        seats_used=seats,
    )


def _policy_values(policy: LicensePolicy) -> dict[str, Any]:
    return {"policy": json.dumps(policy.as_dict()), "cull_after": policy.cull_after}


class SqlLicenseRepository:
    """Licenses. Every change records an invalidation for the license's id."""

    def __init__(self, db: Database, invalidations: InvalidationLog) -> None:
        self._db = db
        self._log = invalidations

    async def add(self, record: License, key_digest: bytes) -> None:
        async with self._db.write() as conn:
            await conn.execute(
                sa.insert(licenses).values(
                    id=record.id,
                    key_digest=key_digest,
                    product=record.product,
                    max_devices=record.max_devices,
                    owner_id=record.owner_id,
                    status=record.status.value,
                    features=json.dumps(list(record.features)),
                    expires_at=record.expires_at,
                    created_at=record.created_at,
                    updated_at=record.updated_at,
                    **_policy_values(record.policy),
                )
            )

    async def find_by_key(self, digest: bytes) -> License | None:
        stmt = sa.select(*LICENSE_COLUMNS).where(licenses.c.key_digest == digest)
        async with self._db.read() as conn:
            row = (await conn.execute(stmt)).one_or_none()
        return license_from_row(row) if row is not None else None

    async def get(self, license_id: UUID) -> License | None:
        async with self._db.read() as conn:
            return await _get(conn, license_id)

    async def search(
        self, *, owner_id: UUID | None, limit: int, after: tuple[datetime, UUID] | None
    ) -> list[License]:
        stmt = (
            sa.select(*LICENSE_COLUMNS, _SEATS)
            .order_by(licenses.c.created_at, licenses.c.id)
            .limit(limit)
        )
        if owner_id is not None:
            stmt = stmt.where(licenses.c.owner_id == owner_id)
        if after is not None:
            stmt = stmt.where(after_clause(licenses.c.created_at, licenses.c.id, after))
        async with self._db.read() as conn:
            rows = (await conn.execute(stmt)).all()
        return [license_from_row(row, row.seats_used) for row in rows]

    async def update(
        self, license_id: UUID, changes: LicenseChanges, *, now: datetime
    ) -> License | None:
        values: dict[str, Any] = {"updated_at": now}
        if changes.status is not None:
            values["status"] = changes.status.value
        if changes.max_devices is not None:
            values["max_devices"] = changes.max_devices
        if changes.expires_at is not None or changes.clear_expires_at:
            values["expires_at"] = changes.expires_at
        if changes.features is not None:
            values["features"] = json.dumps(list(dict.fromkeys(changes.features)))
        if changes.policy is not None:
            values.update(_policy_values(changes.policy))
        async with self._db.write() as conn:
            result = await conn.execute(
                sa.update(licenses).where(licenses.c.id == license_id).values(**values)
            )
            if not result.rowcount:
                return None
            await self._log.record(conn, [license_id], now)
            updated = await _get(conn, license_id)
        self._log.publish([license_id])
        return updated

    async def delete(self, license_id: UUID, *, now: datetime) -> bool:
        async with self._db.write() as conn:
            bound = (
                (
                    await conn.execute(
                        sa.select(devices.c.id).where(devices.c.license_id == license_id)
                    )
                )
                .scalars()
                .all()
            )
            await conn.execute(
                sa.delete(devices).where(
                    devices.c.license_id == license_id, devices.c.activated.is_(True)
                )
            )
            await conn.execute(
                sa.update(devices)
                .where(devices.c.license_id == license_id)
                .values(license_id=None, updated_at=now)
            )
            result = await conn.execute(sa.delete(licenses).where(licenses.c.id == license_id))
            if not result.rowcount:
                return False
            await self._log.record(conn, [license_id, *bound], now)
        self._log.publish([license_id, *bound])
        return True

    async def with_cull_after(self) -> list[License]:
        stmt = sa.select(*LICENSE_COLUMNS).where(licenses.c.cull_after.is_not(None))
        async with self._db.read() as conn:
            rows = (await conn.execute(stmt)).all()
        return [license_from_row(row) for row in rows]


async def _get(conn: Connection, license_id: UUID) -> License | None:
    stmt = sa.select(*LICENSE_COLUMNS, _SEATS).where(licenses.c.id == license_id)
    row = (await conn.execute(stmt)).one_or_none()
    return license_from_row(row, row.seats_used) if row is not None else None
