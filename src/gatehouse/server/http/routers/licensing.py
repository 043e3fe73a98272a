"""/admin/devices and /admin/licenses: the device registry and licenses (admins only).

Anonymous callers get 401, others 403, on every route and method. An admin's API key acts
here only if it carries the `admin` scope (automation: an order system creating licenses).
"""

from __future__ import annotations

from uuid import UUID

from fastapi import APIRouter, Request, status
from pydantic import AwareDatetime

from gatehouse.server.devices.models import (
    DeviceFilter,
    DeviceStatus,
    LicenseChanges,
    LicensePolicy,
    LicenseStatus,
    NewDevice,
)
from gatehouse.server.http.deps import AdminPrincipal, PageCursor, PageLimit, ServicesDep, actor_of
from gatehouse.server.http.device_schemas import (
    CreateDeviceRequest,
    CreateLicenseRequest,
    DeviceOut,
    DevicePageOut,
    IssuedLicenseOut,
    LicenseOut,
    LicensePageOut,
    UpdateDeviceRequest,
    UpdateLicenseRequest,
)

router = APIRouter(prefix="/admin", tags=["admin"])


@router.get("/devices")
async def list_devices(
    _admin: AdminPrincipal,
    services: ServicesDep,
    owner_id: UUID | None = None,
    license_id: UUID | None = None,
    status: DeviceStatus | None = None,
    seen_before: AwareDatetime | None = None,
    seen_after: AwareDatetime | None = None,
    limit: PageLimit = 50,
    cursor: PageCursor = None,
) -> DevicePageOut:
    """Devices oldest first; pass `next_cursor` back as `cursor` for the next page."""
    where = DeviceFilter(
        owner_id=owner_id,
        license_id=license_id,
        status=status,
        seen_before=seen_before,
        seen_after=seen_after,
    )
    page = await services.devices.list_page(where, limit=limit, cursor=cursor)
    return DevicePageOut(items=[DeviceOut.of(d) for d in page.items], next_cursor=page.next_cursor)


@router.post("/devices", status_code=status.HTTP_201_CREATED)
async def create_device(
    body: CreateDeviceRequest, admin: AdminPrincipal, request: Request, services: ServicesDep
) -> DeviceOut:
    """Register a machine by its fingerprint (or the tutorial's `hardware_hash`); it
    verifies from now on, with its license or with `license: null`."""
    if body.owner_id is not None:
        await services.admin.get_user(body.owner_id)
    device = await services.devices.register(
        NewDevice(
            fingerprint=body.value,
            label=body.label,
            components=body.components or {},
            owner_id=body.owner_id,
            license_id=body.license_id,
        ),
        by=actor_of(request, admin),
    )
    return DeviceOut.of(device)


@router.get("/devices/{device_id}")
async def get_device(device_id: UUID, _admin: AdminPrincipal, services: ServicesDep) -> DeviceOut:
    return DeviceOut.of(await services.devices.get(device_id))


@router.patch("/devices/{device_id}")
async def update_device(
    device_id: UUID,
    body: UpdateDeviceRequest,
    admin: AdminPrincipal,
    request: Request,
    services: ServicesDep,
) -> DeviceOut:
    """Relabel, suspend, reinstate or revoke; its tokens stop working at once. A revoked
    device stays revoked (409)."""
    device = await services.devices.update(
        device_id,
        label=body.label,
        status=DeviceStatus(body.status) if body.status else None,
        by=actor_of(request, admin),
    )
    return DeviceOut.of(device)


@router.delete("/devices/{device_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_device(
    device_id: UUID, admin: AdminPrincipal, request: Request, services: ServicesDep
) -> None:
    await services.devices.delete(device_id, by=actor_of(request, admin))


@router.get("/licenses")
async def list_licenses(
    _admin: AdminPrincipal,
    services: ServicesDep,
    owner_id: UUID | None = None,
    limit: PageLimit = 50,
    cursor: PageCursor = None,
) -> LicensePageOut:
    page = await services.licenses.list_page(owner_id=owner_id, limit=limit, cursor=cursor)
    return LicensePageOut(
        items=[LicenseOut.of(x) for x in page.items], next_cursor=page.next_cursor
    )


@router.post("/licenses", status_code=status.HTTP_201_CREATED)
async def create_license(
    body: CreateLicenseRequest, admin: AdminPrincipal, request: Request, services: ServicesDep
) -> IssuedLicenseOut:
    """A license of `max_devices` seats; `license_key` is shown this once."""
    if body.owner_id is not None:
        await services.admin.get_user(body.owner_id)
    issued = await services.licenses.create(
        product=body.product,
        max_devices=body.max_devices,
        owner_id=body.owner_id,
        expires_at=body.expires_at,
        features=body.features,
        policy=body.policy.to_policy() if body.policy else LicensePolicy(),
        by=actor_of(request, admin),
    )
    return IssuedLicenseOut.of(issued)


@router.get("/licenses/{license_id}")
async def get_license(
    license_id: UUID, _admin: AdminPrincipal, services: ServicesDep
) -> LicenseOut:
    return LicenseOut.of(await services.licenses.get(license_id))


@router.patch("/licenses/{license_id}")
async def update_license(
    license_id: UUID,
    body: UpdateLicenseRequest,
    admin: AdminPrincipal,
    request: Request,
    services: ServicesDep,
) -> LicenseOut:
    """Suspend or reinstate, resize, extend, change features or policy; the license's
    devices see it at once. Fewer seats than devices keeps the devices, refuses new ones."""
    changes = LicenseChanges(
        status=LicenseStatus(body.status) if body.status else None,
        max_devices=body.max_devices,
        expires_at=body.expires_at,
        clear_expires_at="expires_at" in body.model_fields_set and body.expires_at is None,
        features=tuple(body.features) if body.features is not None else None,
        policy=body.policy.to_policy() if body.policy is not None else None,
    )
    updated = await services.licenses.update(license_id, changes, by=actor_of(request, admin))
    return LicenseOut.of(updated)


@router.delete("/licenses/{license_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_license(
    license_id: UUID, admin: AdminPrincipal, request: Request, services: ServicesDep
) -> None:
    """Its activated devices are removed with it; registered ones stay, without a license."""
    await services.licenses.delete(license_id, by=actor_of(request, admin))
