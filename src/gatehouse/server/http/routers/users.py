"""/users/me: the caller's own profile, password, sessions and API keys.

Reading works with any credential; changing the account (profile, password, sessions, keys)
needs a signed-in session, so a leaked API key cannot take the account over or mint more keys.
"""

from __future__ import annotations

from uuid import UUID

from fastapi import APIRouter, Request, status

from gatehouse.server.http.deps import CurrentPrincipal, ServicesDep, SessionPrincipal, client_ip
from gatehouse.server.http.schemas import (
    ApiKeyOut,
    ChangePasswordRequest,
    CreateApiKeyRequest,
    IssuedApiKeyOut,
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
    body: UpdateMeRequest, principal: SessionPrincipal, request: Request, services: ServicesDep
) -> UserOut:
    """Change the profile. A new or removed address needs `current_password` (401
    `invalid_credentials` without it or with a wrong one) and is not verified; an address
    of another account answers 409 `email_taken`.

    A sent password is a credential attempt: a wrong one counts toward the address's
    failed attempts and the name's lockout, as on /users/me/password. Each request that
    sets an address counts toward the registration limit (429 `rate_limited` past it).
    """
    clear = "email" in body.model_fields_set and body.email is None
    if body.email is not None:
        # A taken address answers 409: setting one is held to the registration limit of
        # the client address, as registering is, so addresses cannot be probed quickly.
        await services.guard.registration(client_ip(request))
    if body.current_password is None:
        updated = await services.accounts.update_profile(
            principal.user.id, email=body.email, clear_email=clear
        )
    else:
        async with services.accounts.password_attempt(client_ip(request), principal.user):
            updated = await services.accounts.update_profile(
                principal.user.id,
                email=body.email,
                clear_email=clear,
                current_password=body.current_password,
            )
    return UserOut.of(updated)


@router.post("/password", status_code=status.HTTP_204_NO_CONTENT)
async def change_password(
    body: ChangePasswordRequest,
    principal: SessionPrincipal,
    request: Request,
    services: ServicesDep,
) -> None:
    """Change the password; every other session of the user ends.

    A wrong current password counts toward the address's failed attempts and the name's
    lockout (a stolen session must not become a way to guess the password): a locked name
    answers 429 `account_locked` here too.
    """
    async with services.accounts.password_attempt(client_ip(request), principal.user):
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
    session_id: UUID, principal: SessionPrincipal, services: ServicesDep
) -> None:
    """End one session. Another user's session id answers 404, like an unknown one."""
    await services.sessions.revoke(principal.user.id, session_id)


@router.get("/api-keys")
async def list_api_keys(principal: CurrentPrincipal, services: ServicesDep) -> list[ApiKeyOut]:
    """The caller's unrevoked keys (expired ones included), oldest first; never a secret."""
    return [ApiKeyOut.of(k) for k in await services.api_keys.list_own(principal.user.id)]


@router.post("/api-keys", status_code=status.HTTP_201_CREATED)
async def create_api_key(
    body: CreateApiKeyRequest, principal: SessionPrincipal, services: ServicesDep
) -> IssuedApiKeyOut:
    """Create a key; `key` in the answer is the whole key, shown this once."""
    issued = await services.api_keys.issue(
        principal.user,
        name=body.name,
        scopes=body.scopes,
        expires_at=body.expires_at,
        by_admin=principal.is_admin,
    )
    return IssuedApiKeyOut.of(issued)


@router.get("/api-keys/{key_id}")
async def get_api_key(
    key_id: UUID, principal: CurrentPrincipal, services: ServicesDep
) -> ApiKeyOut:
    """One of the caller's keys; another user's key id answers 404, like an unknown one."""
    return ApiKeyOut.of(await services.api_keys.get_own(key_id, owner_id=principal.user.id))


@router.delete("/api-keys/{key_id}", status_code=status.HTTP_204_NO_CONTENT)
async def revoke_api_key(key_id: UUID, principal: SessionPrincipal, services: ServicesDep) -> None:
    """Revoke one of the caller's keys; another user's key id answers 404, like an unknown one."""
    await services.api_keys.revoke(key_id, owner_id=principal.user.id)
