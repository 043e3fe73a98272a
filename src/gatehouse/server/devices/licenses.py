"""License use cases (admins): create, list, change and delete licenses.

A license key is shown once, at creation; storage keeps only its HMAC digest. Each change
is recorded in the audit trail in its own transaction (`license.created`, `.updated`,
`.deleted`). Any change to
a license (suspended, shortened, fewer seats, another policy) reaches its devices at once:
the repository records an invalidation for the license's id, which evicts every cached
device answer that depended on it.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from datetime import datetime
from uuid import UUID

from gatehouse.server.audit.models import Actor, AuditEvent, AuditRecorder, Subject
from gatehouse.server.clock import Clock
from gatehouse.server.devices.models import (
    LICENSE_KEY_PREFIX,
    IssuedLicense,
    License,
    LicenseChanges,
    LicensePage,
    LicensePolicy,
    LicenseStatus,
)
from gatehouse.server.devices.repository import LicenseRepository
from gatehouse.server.errors import InvalidInputError, NotFoundError
from gatehouse.server.pagination import decode_time_cursor, time_page
from gatehouse.server.secret import OpaqueTokens

_PRODUCT = re.compile(r"[^\x00-\x1f\x7f]{1,200}")


class LicenseService:
    def __init__(
        self,
        *,
        licenses: LicenseRepository,
        license_keys: OpaqueTokens,
        audit: AuditRecorder,
        clock: Clock,
    ) -> None:
        self._licenses = licenses
        self._keys = license_keys
        self._audit = audit
        self._clock = clock

    async def create(
        self,
        *,
        product: str,
        max_devices: int,
        owner_id: UUID | None,
        expires_at: datetime | None,
        features: Sequence[str],
        policy: LicensePolicy,
        by: Actor,
    ) -> IssuedLicense:
        """A new license and its key (shown this once).

        Raises:
            InvalidInputError: an empty or over-long product, an expiry without time zone.
        """
        if _PRODUCT.fullmatch(product) is None:
            raise InvalidInputError(
                "The product must be 1-200 characters without control characters.",
                field="product",
            )
        now = self._clock.now()
        key, digest = self._keys.new(LICENSE_KEY_PREFIX)
        record = License(
            id=uuid.uuid4(),
            product=product,
            max_devices=max_devices,
            owner_id=owner_id,
            status=LicenseStatus.ACTIVE,
            features=tuple(dict.fromkeys(features)),
            policy=policy,
            expires_at=_checked_expiry(expires_at),
            created_at=now,
            updated_at=now,
        )
        event = self._event(
            "license.created", by, record.id, product=product, max_devices=max_devices
        )
        with self._audit.staged(event):
            await self._licenses.add(record, digest)
        return IssuedLicense(record=record, license_key=key)

    async def get(self, license_id: UUID) -> License:
        """Raises: NotFoundError."""
        found = await self._licenses.get(license_id)
        if found is None:
            raise NotFoundError("No such license.")
        return found

    async def list_page(
        self, *, owner_id: UUID | None, limit: int, cursor: str | None
    ) -> LicensePage:
        """Licenses oldest first, in pages. Raises: InvalidInputError (the cursor)."""
        after = decode_time_cursor(cursor) if cursor else None
        items, next_cursor = time_page(
            await self._licenses.search(owner_id=owner_id, limit=limit + 1, after=after), limit
        )
        return LicensePage(items=items, next_cursor=next_cursor)

    async def update(self, license_id: UUID, changes: LicenseChanges, *, by: Actor) -> License:
        """Raises: NotFoundError."""
        if changes.expires_at is not None:
            _checked_expiry(changes.expires_at)
        now = self._clock.now()
        before = await self.get(license_id)
        detail: dict[str, str | int | bool | None] = {}
        if changes.status is not None and changes.status is not before.status:
            # Suspension and reinstatement are `license.updated` with the new status.
            detail["status"] = changes.status.value
        if changes.max_devices is not None and changes.max_devices != before.max_devices:
            detail["max_devices"] = changes.max_devices
        if changes.expires_at is not None or changes.clear_expires_at:
            detail["expiry_changed"] = True
        if changes.features is not None:
            detail["features_changed"] = True
        if changes.policy is not None:
            detail["policy_changed"] = True
        with self._audit.staged(self._event("license.updated", by, license_id, **detail)):
            updated = await self._licenses.update(license_id, changes, now=now)
            if updated is None:
                raise NotFoundError("No such license.")
        return updated

    async def delete(self, license_id: UUID, *, by: Actor) -> None:
        """Remove a license: its activated devices go with it, registered ones stay unbound.

        Raises: NotFoundError.
        """
        with self._audit.staged(self._event("license.deleted", by, license_id)):
            if not await self._licenses.delete(license_id, now=self._clock.now()):
                raise NotFoundError("No such license.")

    def _event(
        self, action: str, by: Actor, license_id: UUID, **detail: str | int | bool | None
    ) -> AuditEvent:
        return AuditEvent(
            type=action,
            outcome="success",
            actor=by,
            subject=Subject("license", str(license_id)),
            detail=detail,
        )


def _checked_expiry(expires_at: datetime | None) -> datetime | None:
    if expires_at is None:
        return None
    if expires_at.tzinfo is None:
        raise InvalidInputError("expires_at needs a time zone.", field="expires_at")
    return expires_at
