"""Device and license records as the services see them: plain frozen dataclasses.

A device is one machine, known by the keyed digest of its fingerprint (never the value the
client sent) and, for tolerance matching, the keyed digests of its components. A license
sells up to `max_devices` seats; a device holds a seat while it is bound to the license
and not revoked.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any
from uuid import UUID

from gatehouse.server.errors import (
    DeviceRevokedError,
    DeviceSuspendedError,
    LicenseExpiredError,
    LicenseSuspendedError,
    PermissionDeniedError,
)

LICENSE_KEY_PREFIX = "ghl_"
# Policy defaults, for a license whose policy leaves them out (and devices without one).
DEFAULT_HEARTBEAT_INTERVAL = timedelta(hours=1)
DEFAULT_OFFLINE_GRACE = timedelta(days=7)


class DeviceStatus(StrEnum):
    ACTIVE = "active"
    SUSPENDED = "suspended"
    REVOKED = "revoked"


class LicenseStatus(StrEnum):
    ACTIVE = "active"
    SUSPENDED = "suspended"


@dataclass(frozen=True, slots=True)
class LicensePolicy:
    """How a license's devices are checked. Durations are whole seconds; None: the default.

    - `min_components`: a device whose fingerprint changed still verifies when at least this
      many of its registered components match (None: the fingerprint must match exactly).
    - `heartbeat_interval`: how often a device's last use is written (and should check in).
    - `cull_after`: a device silent this long loses its seat (None: never).
    - `offline_grace`: how long a license file stays valid offline.
    """

    min_components: int | None = None
    heartbeat_interval: int | None = None
    cull_after: int | None = None
    offline_grace: int | None = None

    @property
    def heartbeat(self) -> timedelta:
        if self.heartbeat_interval is None:
            return DEFAULT_HEARTBEAT_INTERVAL
        return timedelta(seconds=self.heartbeat_interval)

    @property
    def grace(self) -> timedelta:
        if self.offline_grace is None:
            return DEFAULT_OFFLINE_GRACE
        return timedelta(seconds=self.offline_grace)

    def as_dict(self) -> dict[str, Any]:
        """The wire and storage shape: `{"match": {"min_components": K}, ...}`."""
        out: dict[str, Any] = {
            "match": {"min_components": self.min_components}
            if self.min_components is not None
            else None,
            "heartbeat_interval": self.heartbeat_interval,
            "cull_after": self.cull_after,
            "offline_grace": self.offline_grace,
        }
        return out

    @classmethod
    def of(cls, data: Mapping[str, Any] | None) -> LicensePolicy:
        if not data:
            return cls()
        match = data.get("match") or {}
        return cls(
            min_components=match.get("min_components"),
            heartbeat_interval=data.get("heartbeat_interval"),
            cull_after=data.get("cull_after"),
            offline_grace=data.get("offline_grace"),
        )


_NO_POLICY = LicensePolicy()


@dataclass(frozen=True, slots=True)
class License:
    id: UUID
    product: str
    max_devices: int
    owner_id: UUID | None
    status: LicenseStatus
    features: tuple[str, ...]
    policy: LicensePolicy
    expires_at: datetime | None
    created_at: datetime
    updated_at: datetime
    # Seats taken (devices bound and not revoked), as of the read.
    seats_used: int = 0

    def refusal(self, now: datetime) -> PermissionDeniedError | None:
        """Why the license does not let its devices run now, or None."""
        if self.status is LicenseStatus.SUSPENDED:
            return LicenseSuspendedError()
        if self.expires_at is not None and self.expires_at <= now:
            return LicenseExpiredError()
        return None


@dataclass(frozen=True, slots=True)
class Device:
    id: UUID
    label: str
    status: DeviceStatus
    owner_id: UUID | None
    license_id: UUID | None
    # True when /devices/activate created it: releasing its seat then removes it, since
    # nothing but the license allowed it. An admin-registered device stays allowed.
    activated: bool
    created_at: datetime
    updated_at: datetime
    last_seen_at: datetime | None

    def refusal(self) -> PermissionDeniedError | None:
        if self.status is DeviceStatus.SUSPENDED:
            return DeviceSuspendedError()
        if self.status is DeviceStatus.REVOKED:
            return DeviceRevokedError()
        return None


@dataclass(frozen=True, slots=True)
class DeviceRecord:
    """A device with what checking it needs: its license, stored fingerprint digest and
    component digests (name -> digest; None when the lookup did not load them)."""

    device: Device
    license: License | None
    fingerprint_digest: bytes
    components: Mapping[str, bytes] | None

    @property
    def policy(self) -> LicensePolicy:
        return self.license.policy if self.license is not None else _NO_POLICY


@dataclass(frozen=True, slots=True)
class Presented:
    """What a machine sent, already digested: the fingerprint and its components, and the
    fingerprint itself (it goes back into the license file, which the machine checks)."""

    fingerprint: str
    fingerprint_digest: bytes
    components: Mapping[str, bytes]


@dataclass(frozen=True, slots=True)
class Verified:
    """A device allowed to run: a device token and a license file for it."""

    device: Device
    license: License | None
    access_token: str
    expires_in: int
    license_file: str


@dataclass(frozen=True, slots=True)
class NewDevice:
    """A device an admin registers (one row of an import)."""

    fingerprint: str
    label: str
    components: Mapping[str, str] = field(default_factory=dict)
    owner_id: UUID | None = None
    license_id: UUID | None = None


@dataclass(frozen=True, slots=True)
class DeviceFilter:
    owner_id: UUID | None = None
    license_id: UUID | None = None
    status: DeviceStatus | None = None
    seen_before: datetime | None = None
    seen_after: datetime | None = None


@dataclass(frozen=True, slots=True)
class LicenseChanges:
    status: LicenseStatus | None = None
    max_devices: int | None = None
    expires_at: datetime | None = None
    clear_expires_at: bool = False
    features: tuple[str, ...] | None = None
    policy: LicensePolicy | None = None


@dataclass(frozen=True, slots=True)
class IssuedLicense:
    """A license just created, with its key: shown to the admin this once."""

    record: License
    license_key: str


@dataclass(frozen=True, slots=True)
class DevicePage:
    items: list[Device]
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class LicensePage:
    items: list[License]
    next_cursor: str | None
