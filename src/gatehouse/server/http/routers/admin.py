"""/admin/users and /admin/api-keys: administration. Anonymous callers get 401, others 403.

An admin's API key acts here only if it carries the `admin` scope.
"""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Query, status

from gatehouse.server.accounts.models import UserChanges
from gatehouse.server.audit.models import Actor
from gatehouse.server.errors import InvalidInputError
from gatehouse.server.http.deps import AdminPrincipal, AdminUser, PageCursor, PageLimit, ServicesDep
from gatehouse.server.http.schemas import (
    AdminCreateApiKeyRequest,
    AdminCreateUserRequest,
    AdminUpdateUserRequest,
    ApiKeyOut,
    ApiKeyPageOut,
    IssuedApiKeyOut,
    UserOut,
    UserPageOut,
)

router = APIRouter(prefix="/admin", tags=["admin"])


@router.get("/users")
async def list_users(
    _admin: AdminUser,
    services: ServicesDep,
    prefix: Annotated[str | None, Query(max_length=64)] = None,
    role: Annotated[str | None, Query(max_length=64)] = None,
    limit: PageLimit = 50,
    cursor: PageCursor = None,
) -> UserPageOut:
    """Users in username order; pass `next_cursor` back as `cursor` for the next page."""
    page = await services.admin.list_users(prefix=prefix, role=role, limit=limit, cursor=cursor)
    return UserPageOut(items=[UserOut.of(u) for u in page.items], next_cursor=page.next_cursor)


@router.post("/users", status_code=status.HTTP_201_CREATED)
async def create_user(
    body: AdminCreateUserRequest, admin: AdminUser, services: ServicesDep
) -> UserOut:
    """A user with a password, or with `service_account: true` (and no password) a service
    account that cannot log in and only holds API keys."""
    roles = frozenset(body.roles)
    if body.service_account:
        if body.password is not None:
            raise InvalidInputError("A service account has no password.", field="password")
        return UserOut.of(
            await services.admin.create_service_account(body.username, roles=roles, by=admin)
        )
    if body.password is None:
        raise InvalidInputError("A password is required.", field="password")
    user = await services.admin.create_user(
        body.username, body.password, email=body.email, roles=roles, by=admin
    )
    return UserOut.of(user)


@router.get("/users/{user_id}")
async def get_user(user_id: UUID, _admin: AdminUser, services: ServicesDep) -> UserOut:
    return UserOut.of(await services.admin.get_user(user_id))


@router.patch("/users/{user_id}")
async def update_user(
    user_id: UUID, body: AdminUpdateUserRequest, admin: AdminUser, services: ServicesDep
) -> UserOut:
    """Change roles, active flag or email. Deactivating ends every session of the user."""
    changes = UserChanges(
        email=body.email,
        clear_email="email" in body.model_fields_set and body.email is None,
        roles=frozenset(body.roles) if body.roles is not None else None,
        is_active=body.is_active,
    )
    return UserOut.of(await services.admin.update_user(admin, user_id, changes))


@router.delete("/users/{user_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_user(user_id: UUID, admin: AdminUser, services: ServicesDep) -> None:
    await services.admin.delete_user(admin, user_id)


@router.get("/api-keys")
async def list_api_keys(
    _admin: AdminUser,
    services: ServicesDep,
    owner_id: UUID | None = None,
    limit: PageLimit = 50,
    cursor: PageCursor = None,
) -> ApiKeyPageOut:
    """Unrevoked keys of every user (or of `owner_id`), oldest first, in pages."""
    page = await services.api_keys.list_page(owner_id=owner_id, limit=limit, cursor=cursor)
    return ApiKeyPageOut(items=[ApiKeyOut.of(k) for k in page.items], next_cursor=page.next_cursor)


@router.post("/api-keys", status_code=status.HTTP_201_CREATED)
async def create_api_key(
    body: AdminCreateApiKeyRequest, admin: AdminPrincipal, services: ServicesDep
) -> IssuedApiKeyOut:
    """A key for any user or service account; `key` is shown this once."""
    owner = await services.admin.get_user(body.owner_id)
    issued = await services.api_keys.issue(
        owner,
        name=body.name,
        scopes=body.scopes,
        expires_at=body.expires_at,
        by_admin=True,
        by=Actor.user(admin.user.id),
    )
    return IssuedApiKeyOut.of(issued)


@router.delete("/api-keys/{key_id}", status_code=status.HTTP_204_NO_CONTENT)
async def revoke_api_key(key_id: UUID, admin: AdminUser, services: ServicesDep) -> None:
    await services.api_keys.revoke(key_id, owner_id=None, by=Actor.user(admin.id))
