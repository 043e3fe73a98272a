"""/devices: machines checking in. Verify and activate need no bearer token (the
fingerprint, or the license key, is the credential); heartbeat and deactivate take the
device token that verify answered.

Unknown fingerprints and unknown license keys get one answer: 401 `unknown_device`.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, status

from gatehouse.server.errors import NotAuthenticatedError
from gatehouse.server.http.deps import (
    CurrentDevice,
    ServicesDep,
    actor_of,
    anonymous,
    oauth2_scheme,
)
from gatehouse.server.http.device_schemas import (
    ActivateRequest,
    DeactivateRequest,
    MachineIdentity,
    VerifiedOut,
)

router = APIRouter(prefix="/devices", tags=["devices"])


@router.post("/verify")
async def verify(body: MachineIdentity, request: Request, services: ServicesDep) -> VerifiedOut:
    """At start: a known, active device gets a device token and a fresh license file.

    A changed machine still verifies when its license's policy allows (`match.min_components`
    of its registered components match); its stored fingerprint is then updated.
    """
    verified = await services.devices.verify(body.value, body.components, by=anonymous(request))
    return VerifiedOut.of(verified)


@router.post("/activate")
async def activate(body: ActivateRequest, request: Request, services: ServicesDep) -> VerifiedOut:
    """Bind this machine to a license if a seat is free (a machine already on it takes no
    second seat); answers like verify. A full license answers 403 `license_full`."""
    verified = await services.devices.activate(
        body.license_key, body.value, body.components, label=body.label, by=anonymous(request)
    )
    return VerifiedOut.of(verified)


@router.post("/heartbeat")
async def heartbeat(
    body: MachineIdentity, device: CurrentDevice, request: Request, services: ServicesDep
) -> VerifiedOut:
    """A running machine checking in with its device token and its current fingerprint;
    answers a fresh license file (and token). Another machine's fingerprint is 403
    `fingerprint_mismatch`."""
    verified = await services.devices.heartbeat(device, body.value, by=actor_of(request, device))
    return VerifiedOut.of(verified)


@router.post("/deactivate", status_code=status.HTTP_204_NO_CONTENT)
async def deactivate(
    request: Request, services: ServicesDep, body: DeactivateRequest | None = None
) -> None:
    """Free this machine's seat: with its device token as bearer, or with `{license_key,
    fingerprint}`. An activated machine is removed; a registered one only unbound."""
    token = await oauth2_scheme(request)
    if token:
        device = await services.authenticator.authenticate_device(token)
        await services.devices.deactivate(device, by=actor_of(request, device))
        return
    if body is None:
        raise NotAuthenticatedError("This request needs a device token or a license key.")
    await services.devices.deactivate_presented(body.license_key, body.value, by=anonymous(request))
