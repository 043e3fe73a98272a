"""/healthz (the process answers) and /readyz (the database answers too)."""

from __future__ import annotations

from fastapi import APIRouter

from gatehouse.server.http.deps import ServicesDep

router = APIRouter(tags=["ops"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(services: ServicesDep) -> dict[str, str]:
    """503 problem+json (code storage_unavailable) while the database does not answer."""
    await services.db.ping()
    return {"status": "ready"}
