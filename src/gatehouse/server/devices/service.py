"""Device use cases: register, verify at start, activate against a license, heartbeat,
deactivate, cull, and the check of a device token.

Every state change is recorded in the audit trail in its own transaction (`staged`);
refusals and failures are recorded after the fact (`record`).

The fingerprint is the device's credential. It is digested (HMAC-SHA256 under a pepper
derived from the server secret) before any lookup, for unknown and known devices alike,
and only digests are stored. Components are digested with their names, so tolerance
matching compares digests too.

Verify is the hot path of every licensed program's start: the device and its license come
from the principal cache (keyed by the fingerprint's digest, evicted by the device's and
the license's ids on any change), the last-seen write happens in the background at most
once per heartbeat interval, and the answer costs two Ed25519 signatures (the device token
and the license file).
"""

from __future__ import annotations

import hmac
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import NoReturn
from uuid import UUID

from gatehouse.server.audit.models import Actor, AuditEvent, AuditRecorder, Outcome, Subject
from gatehouse.server.clock import Clock
from gatehouse.server.devices.models import (
    LICENSE_KEY_PREFIX,
    Device,
    DeviceFilter,
    DevicePage,
    DeviceRecord,
    DeviceStatus,
    License,
    NewDevice,
    Presented,
    Verified,
)
from gatehouse.server.devices.repository import (
    Activation,
    DeviceRepository,
    DeviceRow,
    LicenseRepository,
)
from gatehouse.server.errors import (
    DeviceExistsError,
    FingerprintMismatchError,
    GatehouseError,
    InvalidAccessTokenError,
    InvalidInputError,
    NotFoundError,
    UnknownDeviceError,
)
from gatehouse.server.pagination import decode_time_cursor, time_page
from gatehouse.server.secret import OpaqueTokens
from gatehouse.server.sessions.cache import Loaded, PrincipalCache
from gatehouse.server.tokens.issuer import AccessTokenIssuer
from gatehouse.server.usage import UsageBatch, UsageRecorder
from gatehouse.verifier.jwt import DEVICE_KIND, AccessTokenClaims

#: RFC 8725 s3.11: the license file's own media type, so it never passes for an access token.
LICENSE_FILE_TYPE = "gatehouse-license+jwt"
HEX64 = re.compile(r"[0-9a-f]{64}")
COMPONENT_NAME = re.compile(r"[a-z0-9_.-]{1,64}")
MAX_COMPONENTS = 32
_LABEL = re.compile(r"[^\x00-\x1f\x7f]{1,100}")
_MAX_LICENSE_KEY_LENGTH = 128
_NEVER = datetime.max.replace(tzinfo=UTC)
_BY_FINGERPRINT = "device-fp:"
_BY_ID = "device:"
# A tolerance match must be unambiguous: at most this many candidates are weighed.
_MAX_CANDIDATES = 5


class _Unchanged(Exception):
    """Raised inside a staged block to drop the event of a change that did not happen."""


def check_fingerprint(fingerprint: str, components: Mapping[str, str]) -> None:
    """The wire rules, for callers that did not come through the HTTP schemas (the CLI).

    Raises:
        InvalidInputError: naming the field that breaks them.
    """
    if HEX64.fullmatch(fingerprint) is None:
        raise InvalidInputError(
            "A fingerprint is 64 lowercase hex characters.", field="fingerprint"
        )
    if len(components) > MAX_COMPONENTS:
        raise InvalidInputError("At most 32 components.", field="components")
    for name, value in components.items():
        if COMPONENT_NAME.fullmatch(name) is None or HEX64.fullmatch(value) is None:
            raise InvalidInputError(
                "Component names are 1-64 of [a-z0-9_.-]; values 64 lowercase hex.",
                field="components",
            )


def check_label(label: str) -> str:
    if _LABEL.fullmatch(label) is None:
        raise InvalidInputError(
            "The label must be 1-100 characters without control characters.", field="label"
        )
    return label


class DeviceService:
    """Machines allowed to run a vendor's program."""

    def __init__(
        self,
        *,
        devices: DeviceRepository,
        licenses: LicenseRepository,
        fingerprints: OpaqueTokens,
        license_keys: OpaqueTokens,
        issuer: AccessTokenIssuer,
        cache: PrincipalCache,
        audit: AuditRecorder,
        clock: Clock,
    ) -> None:
        self._devices = devices
        self._licenses = licenses
        self._fingerprints = fingerprints
        self._license_keys = license_keys
        self._issuer = issuer
        self._cache = cache
        self._audit = audit
        self._clock = clock
        self._usage = UsageRecorder(timedelta(hours=1))
        self._seen: UsageBatch[UUID, tuple[datetime, datetime]] = UsageBatch(self._devices.touch)

    def present(self, fingerprint: str, components: Mapping[str, str] | None) -> Presented:
        """Digest what a machine sent (fingerprint and components)."""
        digests = {
            name: self._fingerprints.digest(f"{name}\x00{value}")
            for name, value in (components or {}).items()
        }
        return Presented(
            fingerprint=fingerprint,
            fingerprint_digest=self._fingerprints.digest(fingerprint),
            components=digests,
        )

    # -- the registry (admins) -------------------------------------------------------------

    async def register(self, new: NewDevice, *, by: Actor) -> Device:
        """Register one machine.

        Raises:
            InvalidInputError: a malformed fingerprint, component or label.
            DeviceExistsError: the fingerprint is registered already.
            NotFoundError: the license does not exist.
            LicenseFullError: the license has no free seat.
        """
        return (await self.register_many([(1, new)], by=by))[0]

    async def register_many(
        self, rows: Sequence[tuple[int, NewDevice]], *, by: Actor
    ) -> list[Device]:
        """Register machines all at once or not at all (an import); each row comes with its
        line number, which an error names.

        Raises:
            InvalidInputError, DeviceExistsError: naming the line; nothing is stored.
            NotFoundError, LicenseFullError: for a license; nothing is stored.
        """
        now = self._clock.now()
        prepared: list[DeviceRow] = []
        seen: dict[bytes, int] = {}
        for line, new in rows:
            try:
                check_fingerprint(new.fingerprint, new.components)
                check_label(new.label)
            except InvalidInputError as exc:
                raise InvalidInputError(f"Line {line}: {exc.message}", field=exc.field) from None
            presented = self.present(new.fingerprint, new.components)
            if presented.fingerprint_digest in seen:
                raise DeviceExistsError(
                    f"Line {line}: the fingerprint of line {seen[presented.fingerprint_digest]}"
                    " again."
                )
            seen[presented.fingerprint_digest] = line
            device = _new_device(
                new.label, owner_id=new.owner_id, license_id=new.license_id, now=now, seen=False
            )
            prepared.append(DeviceRow(device, presented.fingerprint_digest, presented.components))
        taken = await self._devices.existing(seen)
        if taken:
            first = min(seen[digest] for digest in taken)
            raise DeviceExistsError(f"Line {first}: this fingerprint is registered already.")
        events = [
            self._event("device.registered", by, row.device, license_id=row.device.license_id)
            for row in prepared
        ]
        with self._audit.staged(*events):
            await self._devices.add(prepared, now=now)
        return [row.device for row in prepared]

    async def get(self, device_id: UUID) -> Device:
        """Raises: NotFoundError."""
        found = await self._devices.find_by_id(device_id)
        if found is None:
            raise NotFoundError("No such device.")
        return found.device

    async def list_page(self, where: DeviceFilter, *, limit: int, cursor: str | None) -> DevicePage:
        """Raises: InvalidInputError for a malformed cursor."""
        after = decode_time_cursor(cursor) if cursor else None
        items, next_cursor = time_page(
            await self._devices.search(where, limit=limit + 1, after=after), limit
        )
        return DevicePage(items=items, next_cursor=next_cursor)

    async def update(
        self, device_id: UUID, *, label: str | None, status: DeviceStatus | None, by: Actor
    ) -> Device:
        """Relabel, suspend, reactivate or revoke a device; it takes effect at once.

        Raises:
            NotFoundError: no such device.
            ConflictError: a revoked device cannot be made active or suspended again.
        """
        if label is not None:
            check_label(label)
        before = await self.get(device_id)
        events = []
        if status is not None and status is not before.status:
            action = {
                DeviceStatus.ACTIVE: "device.reinstated",
                DeviceStatus.SUSPENDED: "device.suspended",
                DeviceStatus.REVOKED: "device.revoked",
            }[status]
            events.append(self._event(action, by, before, license_id=before.license_id))
        if label is not None and label != before.label:
            events.append(self._event("device.updated", by, before, license_id=before.license_id))
        with self._audit.staged(*events):
            device = await self._devices.update(
                device_id, label=label, status=status, now=self._clock.now()
            )
            if device is None:
                raise NotFoundError("No such device.")
        return device

    async def delete(self, device_id: UUID, *, by: Actor) -> None:
        """Raises: NotFoundError."""
        device = await self.get(device_id)
        with self._audit.staged(
            self._event("device.deleted", by, device, license_id=device.license_id)
        ):
            if not await self._devices.delete(device_id, now=self._clock.now()):
                raise NotFoundError("No such device.")

    # -- machines ---------------------------------------------------------------------------

    async def verify(
        self, fingerprint: str, components: Mapping[str, str] | None, *, by: Actor
    ) -> Verified:
        """A machine checking in at start. The fingerprint is the credential.

        Raises:
            UnknownDeviceError: no device matches (exactly, or by its policy's tolerance).
            DeviceSuspendedError, DeviceRevokedError, LicenseSuspendedError,
            LicenseExpiredError: the device may not run now.
        """
        now = self._clock.now()
        record = await self._by_fingerprint(self._fingerprints.digest(fingerprint), now)
        if record is not None:  # the usual case: no component needs digesting
            self._check_may_run(record, now, by, "device.verify_failed")
            return await self._grant(record, fingerprint, now)
        presented = self.present(fingerprint, components)
        tolerated = None
        if presented.components:
            tolerated = await self._tolerant_match(presented, license_id=None)
        if tolerated is None:
            self._fail("device.verify_failed", by, None, UnknownDeviceError())
        self._check_may_run(tolerated, now, by, "device.verify_failed")
        record = await self._rebind(tolerated, presented, by)
        return await self._grant(record, fingerprint, now)

    async def activate(
        self,
        license_key: str,
        fingerprint: str,
        components: Mapping[str, str] | None,
        *,
        label: str | None,
        by: Actor,
    ) -> Verified:
        """Bind this machine to the license of `license_key`, if it is on it already or a
        seat is free, and answer like `verify`.

        Raises:
            UnknownDeviceError: no such license key (the same answer as an unknown device).
            LicenseFullError, LicenseSuspendedError, LicenseExpiredError,
            DeviceSuspendedError, DeviceRevokedError.
        """
        presented = self.present(fingerprint, components)
        found = await self._license_of_key(license_key)
        now = self._clock.now()
        if found is None:
            self._fail("device.activate_failed", by, None, UnknownDeviceError())
        if (refusal := found.refusal(now)) is not None:
            self._fail("device.activate_failed", by, None, refusal, license_id=found.id)
        matched = None
        if presented.components and found.policy.min_components is not None:
            if await self._devices.existing([presented.fingerprint_digest]):
                matched = None
            else:
                matched = await self._tolerant_match(presented, license_id=found.id)
        row = DeviceRow(
            _new_device(
                check_label(label) if label is not None else "activated device",
                owner_id=found.owner_id,
                license_id=found.id,
                now=now,
                seen=True,
            ),
            presented.fingerprint_digest,
            presented.components,
        )
        match_id = matched.device.id if matched is not None else None
        try:
            try:
                outcome = await self._bind(found, row, match_id, now, by)
            except DeviceExistsError:
                # A concurrent activation of this machine inserted it first: bind that one.
                outcome = await self._bind(found, row, None, now, by)
        except GatehouseError as exc:
            self._fail("device.activate_failed", by, None, exc, license_id=found.id)
        record = outcome.record
        if matched is not None:
            record = await self._rebind(record, presented, by)
        return await self._grant(record, presented.fingerprint, now)

    async def _bind(
        self, found: License, row: DeviceRow, match_id: UUID | None, now: datetime, by: Actor
    ) -> Activation:
        """Activate with its `device.activated` record in the same transaction.

        The record names the device before the write decides, so the device is looked up
        first: the tolerance match, else the machine registered by its fingerprint, else
        the new row. (Should another activation insert this machine meanwhile, the write
        raises DeviceExistsError, the record is dropped, and the caller binds again.) An
        activation of a machine already on the license changes nothing and is recorded
        within a second instead.
        """
        if match_id is not None:  # a tolerance match is on this license already
            device, created, seat_taken = replace(row.device, id=match_id), False, False
        elif known := await self._devices.find_by_fingerprint(row.fingerprint_digest):
            device, created = known.device, False
            seat_taken = known.device.license_id != found.id
        else:
            device, created, seat_taken = row.device, True, True
        event = self._event(
            "device.activated",
            by,
            device,
            license_id=found.id,
            created=created,
            seat_taken=seat_taken,
        )
        with self._audit.staged(event):
            return await self._devices.activate(found.id, row, match_id=match_id, now=now)

    async def deactivate_presented(self, license_key: str, fingerprint: str, *, by: Actor) -> None:
        """Free the seat this machine holds on the license of `license_key`.

        Raises:
            UnknownDeviceError: no such license, or this machine holds no seat on it.
        """
        presented = self.present(fingerprint, None)
        found = await self._license_of_key(license_key)
        record = await self._devices.find_by_fingerprint(presented.fingerprint_digest)
        if found is None or record is None or record.device.license_id != found.id:
            self._fail("device.deactivate_failed", by, None, UnknownDeviceError())
        await self._release(record.device, found.id, by, "device.deactivated")

    async def deactivate(self, record: DeviceRecord, *, by: Actor) -> None:
        """Free the seat of the device behind a device token (nothing if it holds none)."""
        if record.device.license_id is not None:
            await self._release(record.device, record.device.license_id, by, "device.deactivated")

    async def heartbeat(self, record: DeviceRecord, fingerprint: str, *, by: Actor) -> Verified:
        """A running machine checking in with its device token and current fingerprint.

        Raises:
            FingerprintMismatchError: the fingerprint is not the device's (nothing recorded
                but the failure).
            LicenseSuspendedError, LicenseExpiredError.
        """
        digest = self._fingerprints.digest(fingerprint)
        if not hmac.compare_digest(digest, record.fingerprint_digest):
            self._fail("device.heartbeat_failed", by, record.device, FingerprintMismatchError())
        now = self._clock.now()
        self._check_may_run(record, now, by, "device.heartbeat_failed")
        return await self._grant(record, fingerprint, now)

    async def authenticate(self, claims: AccessTokenClaims) -> DeviceRecord:
        """The live device behind a verified device token.

        Raises:
            InvalidAccessTokenError: not a device token, or the device is gone.
            DeviceSuspendedError, DeviceRevokedError: the device may not act now.
        """
        if claims.kind != DEVICE_KIND:
            raise InvalidAccessTokenError("This request needs a device token.")
        try:
            device_id = UUID(claims.subject)
        except ValueError as exc:
            raise InvalidAccessTokenError from exc
        now = self._clock.now()
        key = _BY_ID + str(device_id)

        async def load() -> Loaded | None:
            return _loaded(await self._devices.find_by_id(device_id))

        entry = self._cache.lookup(key, now) or await self._cache.fill(key, load)
        if entry is None or not isinstance(entry.payload, DeviceRecord):
            raise InvalidAccessTokenError("The device of this token is no longer registered.")
        record = entry.payload
        if (refusal := record.device.refusal()) is not None:
            raise refusal
        return record

    async def cull(self, *, by: Actor) -> int:
        """Free the seats of devices silent past their license's `cull_after`; how many."""
        now = self._clock.now()
        culled = 0
        for found in await self._licenses.with_cull_after():
            assert found.policy.cull_after is not None  # noqa: S101 - the query's condition
            before = now - timedelta(seconds=found.policy.cull_after)
            for device_id in await self._devices.silent_since(found.id, before):
                record = await self._devices.find_by_id(device_id)
                if record is not None and record.device.license_id == found.id:
                    culled += await self._release(record.device, found.id, by, "device.culled")
        return culled

    async def close(self) -> None:
        """Write the last-seen times noted so far."""
        await self._seen.close()

    # -- the steps --------------------------------------------------------------------------

    async def _by_fingerprint(self, digest: bytes, now: datetime) -> DeviceRecord | None:
        key = _BY_FINGERPRINT + digest.hex()

        async def load() -> Loaded | None:
            return _loaded(await self._devices.find_by_fingerprint(digest))

        entry = self._cache.lookup(key, now) or await self._cache.fill(key, load)
        if entry is None or not isinstance(entry.payload, DeviceRecord):
            return None
        return entry.payload

    async def _tolerant_match(
        self, presented: Presented, *, license_id: UUID | None
    ) -> DeviceRecord | None:
        """The one device whose registered components match at least its policy's
        `min_components` of the presented ones (of `license_id`, when given). A tie is no
        match: a machine must never be taken for another."""
        best: DeviceRecord | None = None
        best_count = 0
        tie = False
        candidates = await self._devices.candidates(presented.components.values())
        for device_id, _ in candidates[:_MAX_CANDIDATES]:
            record = await self._devices.find_by_id(device_id)
            if record is None or record.device.status is DeviceStatus.REVOKED:
                continue
            if license_id is not None and record.device.license_id != license_id:
                continue
            needed = record.policy.min_components
            count = _matching(record, presented)
            if needed is None or count < needed:
                continue
            if count > best_count:
                best, best_count, tie = record, count, False
            elif count == best_count:
                tie = True
        return None if tie else best

    async def _rebind(self, record: DeviceRecord, presented: Presented, by: Actor) -> DeviceRecord:
        """Store the new fingerprint of a tolerance-matched machine and record the match."""
        now = self._clock.now()
        event = self._event(
            "device.matched_tolerant",
            by,
            record.device,
            license_id=record.device.license_id,
            components_matched=_matching(record, presented),
            components_presented=len(presented.components),
        )
        try:
            with self._audit.staged(event):
                if not await self._devices.rebind(record.device.id, presented, now=now):
                    raise _Unchanged
        except _Unchanged:
            self._fail("device.verify_failed", by, record.device, UnknownDeviceError())
        return DeviceRecord(
            device=record.device,
            license=record.license,
            fingerprint_digest=presented.fingerprint_digest,
            components=presented.components,
        )

    def _check_may_run(self, record: DeviceRecord, now: datetime, by: Actor, action: str) -> None:
        refusal = record.device.refusal() or (
            record.license.refusal(now) if record.license is not None else None
        )
        if refusal is not None:
            self._fail(action, by, record.device, refusal, license_id=record.device.license_id)

    async def _grant(self, record: DeviceRecord, fingerprint: str, now: datetime) -> Verified:
        """A device token and a license file; the visit is written in the background, at
        most once per heartbeat interval."""
        device, found = record.device, record.license
        interval = record.policy.heartbeat
        if self._usage.due(device.id, device.last_seen_at, now, interval=interval):
            self._seen.note(device.id, (now, now - interval))
        token = await self._issuer.issue(
            subject=device.id, session_id=None, roles=(), kind=DEVICE_KIND
        )
        issued = int(now.timestamp())
        expires = now + record.policy.grace
        if found is not None and found.expires_at is not None:
            expires = min(expires, found.expires_at)
        license_file = await self._issuer.sign(
            {
                "iss": self._issuer.issuer,
                "sub": str(device.id),
                "jti": uuid.uuid4().hex,
                "fingerprint": fingerprint,
                "device_id": str(device.id),
                "license_id": str(found.id) if found is not None else None,
                "product": found.product if found is not None else None,
                "features": list(found.features) if found is not None else [],
                "iat": issued,
                "exp": int(expires.timestamp()),
            },
            typ=LICENSE_FILE_TYPE,
        )
        return Verified(
            device=device,
            license=found,
            access_token=token,
            expires_in=self._issuer.ttl_seconds,
            license_file=license_file,
        )

    async def _license_of_key(self, license_key: str) -> License | None:
        # The digest is computed before the lookup, for malformed keys as for real ones.
        digest = self._license_keys.digest(license_key[:_MAX_LICENSE_KEY_LENGTH])
        if not license_key.startswith(LICENSE_KEY_PREFIX):
            return None
        if len(license_key) > _MAX_LICENSE_KEY_LENGTH:
            return None
        return await self._licenses.find_by_key(digest)

    async def _release(self, device: Device, license_id: UUID, by: Actor, action: str) -> int:
        """Free the device's seat with its record in the same transaction; 0 (nothing
        recorded) when it held none on that license by then."""
        event = self._event(action, by, device, license_id=license_id, removed=device.activated)
        try:
            with self._audit.staged(event):
                if not await self._devices.release(
                    device.id, license_id=license_id, now=self._clock.now()
                ):
                    raise _Unchanged
        except _Unchanged:
            return 0
        return 1

    def _event(
        self,
        action: str,
        by: Actor,
        device: Device | None,
        outcome: Outcome = "success",
        **details: str | int | bool | UUID | None,
    ) -> AuditEvent:
        return AuditEvent(
            type=action,
            outcome=outcome,
            actor=by,
            subject=Subject("device", str(device.id)) if device is not None else None,
            detail={k: str(v) if isinstance(v, UUID) else v for k, v in details.items()},
        )

    def _fail(
        self,
        action: str,
        by: Actor,
        device: Device | None,
        error: GatehouseError,
        **details: str | int | bool | UUID | None,
    ) -> NoReturn:
        """Record a refusal and raise it."""
        self._audit.record(self._event(action, by, device, "failure", reason=error.code, **details))
        raise error


def _new_device(
    label: str, *, owner_id: UUID | None, license_id: UUID | None, now: datetime, seen: bool
) -> Device:
    """A device about to be stored: registered by an admin (`seen` False), or activated by
    the machine itself (`seen` True: it is checking in right now)."""
    return Device(
        id=uuid.uuid4(),
        label=label,
        status=DeviceStatus.ACTIVE,
        owner_id=owner_id,
        license_id=license_id,
        activated=seen,
        created_at=now,
        updated_at=now,
        last_seen_at=now if seen else None,
    )


def _matching(record: DeviceRecord, presented: Presented) -> int:
    """How many presented components equal the device's registered ones (by name)."""
    stored = record.components or {}
    return sum(
        1
        for name, digest in presented.components.items()
        if hmac.compare_digest(stored.get(name, b""), digest)
    )


def _loaded(record: DeviceRecord | None) -> Loaded | None:
    if record is None:
        return None
    owners = (record.device.id,) + ((record.license.id,) if record.license is not None else ())
    return Loaded(None, _NEVER, record, owners)
