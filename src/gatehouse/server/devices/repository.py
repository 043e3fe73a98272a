"""What the device and license services need from storage. `server/storage` implements it.

Every write that changes what a device may do (its status, its license, its fingerprint,
its removal, any change to its license) records an invalidation for the device's id and
the license's id, so every process forgets cached answers about them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol
from uuid import UUID

from gatehouse.server.devices.models import (
    Device,
    DeviceFilter,
    DeviceRecord,
    DeviceStatus,
    License,
    LicenseChanges,
    Presented,
)


@dataclass(frozen=True, slots=True)
class DeviceRow:
    """A device to insert with its digests."""

    device: Device
    fingerprint_digest: bytes
    components: Mapping[str, bytes]


@dataclass(frozen=True, slots=True)
class Activation:
    """The outcome of an activation: the device (new or existing) and its license."""

    record: DeviceRecord
    created: bool
    seat_taken: bool


class DeviceRepository(Protocol):
    async def add(self, rows: Sequence[DeviceRow], *, now: datetime) -> None:
        """Insert devices in one transaction, all or none.

        Raises:
            DeviceExistsError: a fingerprint is registered already.
            LicenseFullError: binding them would take more seats than a license has.
            NotFoundError: a license does not exist.
        """
        ...

    async def existing(self, digests: Iterable[bytes]) -> set[bytes]:
        """Which of these fingerprint digests are registered."""
        ...

    async def find_by_fingerprint(self, digest: bytes) -> DeviceRecord | None:
        """The device with this fingerprint and its license; `components` not loaded."""
        ...

    async def find_by_id(self, device_id: UUID) -> DeviceRecord | None:
        """The device, its license and its components."""
        ...

    async def candidates(self, component_digests: Iterable[bytes]) -> list[tuple[UUID, int]]:
        """Devices sharing at least one of these component digests, with how many they
        share, most first (a few at most)."""
        ...

    async def search(
        self, where: DeviceFilter, *, limit: int, after: tuple[datetime, UUID] | None
    ) -> list[Device]:
        """Devices oldest first, only those after `after` (created_at, id)."""
        ...

    async def update(
        self, device_id: UUID, *, label: str | None, status: DeviceStatus | None, now: datetime
    ) -> Device | None:
        """Change label and status; a revoked device stays revoked (None if unknown).

        Raises:
            ConflictError: the device is revoked and the change would revive it.
        """
        ...

    async def delete(self, device_id: UUID, *, now: datetime) -> bool: ...

    async def rebind(self, device_id: UUID, presented: Presented, *, now: datetime) -> bool:
        """Store a tolerance-matched device's new fingerprint and components.
        False if another device has that fingerprint now."""
        ...

    async def touch(self, seen: Mapping[UUID, tuple[datetime, datetime]]) -> None:
        """For each device id -> (now, not_since): set last_seen_at to `now` unless it is
        already at or after `not_since`. One transaction."""
        ...

    async def activate(
        self, license_id: UUID, row: DeviceRow, *, match_id: UUID | None, now: datetime
    ) -> Activation:
        """Bind the device `match_id` (or, when None, the one with the row's fingerprint,
        or the new device `row`) to the license, if it is on it already or a seat is free.
        One transaction that locks the license row: concurrent activations never take
        more seats than the license has.

        Raises:
            UnknownDeviceError: the license is gone.
            LicenseFullError, LicenseSuspendedError, LicenseExpiredError,
            DeviceSuspendedError, DeviceRevokedError.
        """
        ...

    async def release(self, device_id: UUID, *, license_id: UUID | None, now: datetime) -> bool:
        """Free the device's seat (of `license_id`, when given): an activated device is
        removed, a registered one unbound. False if it held no such seat."""
        ...

    async def silent_since(self, license_id: UUID, before: datetime) -> list[UUID]:
        """Devices of the license, not revoked, not seen (nor created) since `before`."""
        ...


class LicenseRepository(Protocol):
    async def add(self, record: License, key_digest: bytes) -> None: ...

    async def find_by_key(self, digest: bytes) -> License | None: ...

    async def get(self, license_id: UUID) -> License | None: ...

    async def search(
        self, *, owner_id: UUID | None, limit: int, after: tuple[datetime, UUID] | None
    ) -> list[License]: ...

    async def update(
        self, license_id: UUID, changes: LicenseChanges, *, now: datetime
    ) -> License | None: ...

    async def delete(self, license_id: UUID, *, now: datetime) -> bool:
        """Remove the license, its activated devices, and unbind its registered ones."""
        ...

    async def with_cull_after(self) -> list[License]:
        """Licenses whose policy culls silent devices."""
        ...
