"""Request and response bodies of the device and license routes (pydantic models).

The wire format of a machine's identity: `fingerprint` (or, as the common tutorial names it,
`hardware_hash`, or `hardware_id`, which its client sends) is 64 lowercase hex characters;
`components` maps at most 32 names of `[a-z0-9_.-]{1,64}` to 64 lowercase hex. Anything
else is 422 `validation_failed` before any lookup.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal, Self
from uuid import UUID

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    StringConstraints,
    model_validator,
)

from gatehouse.server.devices.models import (
    Device,
    IssuedLicense,
    License,
    LicensePolicy,
    Verified,
)

Hex64 = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
ComponentName = Annotated[str, StringConstraints(pattern=r"^[a-z0-9_.-]{1,64}$")]
Components = Annotated[dict[ComponentName, Hex64], Field(max_length=32)]
Label = Annotated[
    str, StringConstraints(min_length=1, max_length=100, pattern=r"^[^\x00-\x1f\x7f]+$")
]
LicenseKey = Annotated[str, StringConstraints(min_length=1, max_length=512)]
Seconds = Annotated[StrictInt, Field(ge=1, le=10 * 365 * 86400)]
Seats = Annotated[StrictInt, Field(ge=1, le=1_000_000)]
Feature = Annotated[
    str, StringConstraints(min_length=1, max_length=64, pattern=r"^[^\x00-\x1f\x7f]+$")
]
Features = Annotated[list[Feature], Field(max_length=64)]


class MachineIdentity(BaseModel):
    """Exactly one of `fingerprint`, `hardware_hash`, `hardware_id`; `components` optional."""

    fingerprint: Hex64 | None = None
    hardware_hash: Hex64 | None = None
    hardware_id: Hex64 | None = None
    components: Components | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> Self:
        given = [v for v in (self.fingerprint, self.hardware_hash, self.hardware_id) if v]
        if len(given) != 1:
            raise ValueError("send exactly one of fingerprint, hardware_hash, hardware_id")
        return self

    @property
    def value(self) -> str:
        value = self.fingerprint or self.hardware_hash or self.hardware_id
        assert value is not None  # noqa: S101 - the validator guarantees one
        return value


class ActivateRequest(MachineIdentity):
    license_key: LicenseKey
    label: Label | None = None


class DeactivateRequest(MachineIdentity):
    license_key: LicenseKey


class LicenseSummaryOut(BaseModel):
    id: UUID
    product: str
    features: list[str]
    expires_at: datetime | None


class VerifiedOut(BaseModel):
    """A device allowed to run: its token (a JWT with `kind: "device"`) and license file."""

    device_id: UUID
    license: LicenseSummaryOut | None
    access_token: str
    token_type: str = "bearer"
    expires_in: int
    license_file: str

    @classmethod
    def of(cls, verified: Verified) -> VerifiedOut:
        found = verified.license
        return cls(
            device_id=verified.device.id,
            license=LicenseSummaryOut(
                id=found.id,
                product=found.product,
                features=list(found.features),
                expires_at=found.expires_at,
            )
            if found is not None
            else None,
            access_token=verified.access_token,
            expires_in=verified.expires_in,
            license_file=verified.license_file,
        )


class CreateDeviceRequest(MachineIdentity):
    label: Label
    owner_id: UUID | None = None
    license_id: UUID | None = None


class UpdateDeviceRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    label: Label | None = None
    status: Literal["active", "suspended", "revoked"] | None = None


class DeviceOut(BaseModel):
    id: UUID
    label: str
    status: str
    owner_id: UUID | None
    license_id: UUID | None
    # True when /devices/activate created it (releasing its seat removes it).
    activated: bool
    created_at: datetime
    last_seen_at: datetime | None

    @classmethod
    def of(cls, device: Device) -> DeviceOut:
        return cls(
            id=device.id,
            label=device.label,
            status=device.status.value,
            owner_id=device.owner_id,
            license_id=device.license_id,
            activated=device.activated,
            created_at=device.created_at,
            last_seen_at=device.last_seen_at,
        )


class DevicePageOut(BaseModel):
    items: list[DeviceOut]
    next_cursor: str | None


class MatchPolicy(BaseModel):
    model_config = ConfigDict(extra="forbid")

    min_components: Annotated[StrictInt, Field(ge=1, le=32)]


class PolicyIn(BaseModel):
    """Durations in whole seconds, at least 1; leave one out for its default."""

    model_config = ConfigDict(extra="forbid")

    match: MatchPolicy | None = None
    heartbeat_interval: Seconds | None = None
    cull_after: Seconds | None = None
    offline_grace: Seconds | None = None

    def to_policy(self) -> LicensePolicy:
        return LicensePolicy(
            min_components=self.match.min_components if self.match else None,
            heartbeat_interval=self.heartbeat_interval,
            cull_after=self.cull_after,
            offline_grace=self.offline_grace,
        )


class CreateLicenseRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    product: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    max_devices: Seats
    owner_id: UUID | None = None
    expires_at: AwareDatetime | None = None
    features: Features = []
    policy: PolicyIn | None = None


class UpdateLicenseRequest(BaseModel):
    """Fields to change; `expires_at: null` removes the expiry."""

    model_config = ConfigDict(extra="forbid")

    status: Literal["active", "suspended"] | None = None
    max_devices: Seats | None = None
    expires_at: AwareDatetime | None = None
    features: Features | None = None
    policy: PolicyIn | None = None


class LicenseOut(BaseModel):
    id: UUID
    product: str
    max_devices: int
    seats_used: int
    owner_id: UUID | None
    status: str
    features: list[str]
    policy: dict[str, Any]
    expires_at: datetime | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, found: License) -> LicenseOut:
        return cls(
            id=found.id,
            product=found.product,
            max_devices=found.max_devices,
            seats_used=found.seats_used,
            owner_id=found.owner_id,
            status=found.status.value,
            features=list(found.features),
            policy=found.policy.as_dict(),
            expires_at=found.expires_at,
            created_at=found.created_at,
            updated_at=found.updated_at,
        )


class IssuedLicenseOut(LicenseOut):
    """The license and its key, shown this once (stored as a digest)."""

    license_key: str

    @classmethod
    def of(cls, issued: IssuedLicense) -> IssuedLicenseOut:  # type: ignore[override]
        return cls(**LicenseOut.of(issued.record).model_dump(), license_key=issued.license_key)


class LicensePageOut(BaseModel):
    items: list[LicenseOut]
    next_cursor: str | None
