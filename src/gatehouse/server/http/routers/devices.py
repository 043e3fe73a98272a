"""/devices: machines checking in. Verify and activate need no bearer token (the
fingerprint, or the license key, is the credential); heartbeat and deactivate take the
device token that verify answered.

Unknown fingerprints and unknown license keys get one answer: 401 `unknown_device`, counted
as a failed credential attempt of the address (`limits.AbuseGuard`; past the limit, 429).

These are the routes every licensed program calls at start, so their bodies are read and
answered without FastAPI's per-field machinery: the JSON is validated by the pydantic
model in one call (`_read`; errors are the usual 422 problem) and the answer is serialized
once (`_answer`). The OpenAPI schema still shows both models.
"""

from __future__ import annotations

from typing import Any, TypeVar

from fastapi import APIRouter, Request, Response, status
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError

from gatehouse.server.devices.models import Verified
from gatehouse.server.errors import NotAuthenticatedError
from gatehouse.server.http.deps import (
    CurrentDevice,
    ServicesDep,
    actor_of,
    anonymous,
    client_ip,
    oauth2_scheme,
    services_of,
)
from gatehouse.server.http.device_schemas import (
    ActivateRequest,
    DeactivateRequest,
    MachineIdentity,
    VerifiedOut,
)

router = APIRouter(prefix="/devices", tags=["devices"])

M = TypeVar("M", bound=BaseModel)
_ANSWERED: dict[int | str, dict[str, Any]] = {
    200: {"model": VerifiedOut, "description": "The device may run."}
}


def _body_of(model: type[BaseModel]) -> dict[str, Any]:
    schema = {"content": {"application/json": {"schema": model.model_json_schema()}}}
    return {"requestBody": {**schema, "required": True}}


async def _read(request: Request, model: type[M]) -> M:
    """The JSON body as `model`. Raises RequestValidationError (422 validation_failed)."""
    try:
        return model.model_validate_json(await request.body())
    except ValidationError as exc:
        errors = [{**e, "loc": ("body", *e["loc"])} for e in exc.errors(include_url=False)]
        raise RequestValidationError(errors) from None


def _answer(verified: Verified) -> Response:
    return Response(VerifiedOut.of(verified).model_dump_json(), media_type="application/json")


@router.post("/verify", responses=_ANSWERED, openapi_extra=_body_of(MachineIdentity))
async def verify(request: Request) -> Response:
    """At start: a known, active device gets a device token and a fresh license file.

    A changed machine still verifies when its license's policy allows (`match.min_components`
    of its registered components match); its stored fingerprint is then updated.
    """
    body = await _read(request, MachineIdentity)
    services = services_of(request)
    async with services.guard.attempt(client_ip(request)):
        verified = await services.devices.verify(body.value, body.components, by=anonymous(request))
    return _answer(verified)


@router.post("/activate", responses=_ANSWERED, openapi_extra=_body_of(ActivateRequest))
async def activate(request: Request) -> Response:
    """Bind this machine to a license if a seat is free (a machine already on it takes no
    second seat); answers like verify. A full license answers 403 `license_full`."""
    body = await _read(request, ActivateRequest)
    services = services_of(request)
    async with services.guard.attempt(client_ip(request)):
        verified = await services.devices.activate(
            body.license_key, body.value, body.components, label=body.label, by=anonymous(request)
        )
    return _answer(verified)


@router.post("/heartbeat", responses=_ANSWERED, openapi_extra=_body_of(MachineIdentity))
async def heartbeat(device: CurrentDevice, request: Request, services: ServicesDep) -> Response:
    """A running machine checking in with its device token and its current fingerprint;
    answers a fresh license file (and token). Another machine's fingerprint is 403
    `fingerprint_mismatch`."""
    body = await _read(request, MachineIdentity)
    verified = await services.devices.heartbeat(device, body.value, by=actor_of(request, device))
    return _answer(verified)


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
    async with services.guard.attempt(client_ip(request)):
        await services.devices.deactivate_presented(
            body.license_key, body.value, by=anonymous(request)
        )
