"""/users/me: the caller's own profile, password and sessions."""

from __future__ import annotations

from uuid import UUID

from fastapi import APIRouter, status

from gatehouse.server.http.deps import CurrentPrincipal, ServicesDep
from gatehouse.server.http.schemas import (
    ChangePasswordRequest,
    SessionOut,
    UpdateMeRequest,
    UserOut,
)

router = APIRouter(prefix="/users/me", tags=["users"])


@router.get("")
async def get_me(principal: CurrentPrincipal) -> UserOut:
    return UserOut.of(principal.user)


@router.patch("")
async def update_me(
    body: UpdateMeRequest, principal: CurrentPrincipal, services: ServicesDep
) -> UserOut:
    clear = "email" in body.model_fields_set and body.email is None
    updated = await services.accounts.update_profile(
        principal.user.id, email=body.email, clear_email=clear
    )
    return UserOut.of(updated)


@router.post("/password", status_code=status.HTTP_204_NO_CONTENT)
async def change_password(
    body: ChangePasswordRequest, principal: CurrentPrincipal, services: ServicesDep
) -> None:
    """Change the password; every other session of the user ends."""
    await services.accounts.change_password(
        principal.user.id,
        body.current_password,
        body.new_password,
        keep_session=principal.session_id,
    )


@router.get("/sessions")
async def list_sessions(principal: CurrentPrincipal, services: ServicesDep) -> list[SessionOut]:
    sessions = await services.sessions.list_active(principal.user.id)
    return [SessionOut.of(s, current_id=principal.session_id) for s in sessions]


@router.delete("/sessions/{session_id}", status_code=status.HTTP_204_NO_CONTENT)
async def revoke_session(
    session_id: UUID, principal: CurrentPrincipal, services: ServicesDep
) -> None:
    """End one session. Another user's session id answers 404, like an unknown one."""
    await services.sessions.revoke(principal.user.id, session_id)
