"""/admin/users: account administration. Anonymous callers get 401, non-admins 403."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Query, status

from gatehouse.server.accounts.models import UserChanges
from gatehouse.server.http.deps import AdminUser, ServicesDep
from gatehouse.server.http.schemas import (
    AdminCreateUserRequest,
    AdminUpdateUserRequest,
    UserOut,
    UserPageOut,
)

router = APIRouter(prefix="/admin/users", tags=["admin"])


@router.get("")
async def list_users(
    _admin: AdminUser,
    services: ServicesDep,
    prefix: Annotated[str | None, Query(max_length=64)] = None,
    role: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> UserPageOut:
    """Users in username order; pass `next_cursor` back as `cursor` for the next page."""
    page = await services.admin.list_users(prefix=prefix, role=role, limit=limit, cursor=cursor)
    return UserPageOut(items=[UserOut.of(u) for u in page.items], next_cursor=page.next_cursor)


@router.post("", status_code=status.HTTP_201_CREATED)
async def create_user(
    body: AdminCreateUserRequest, _admin: AdminUser, services: ServicesDep
) -> UserOut:
    user = await services.admin.create_user(
        body.username, body.password, email=body.email, roles=frozenset(body.roles)
    )
    return UserOut.of(user)


@router.get("/{user_id}")
async def get_user(user_id: UUID, _admin: AdminUser, services: ServicesDep) -> UserOut:
    return UserOut.of(await services.admin.get_user(user_id))


@router.patch("/{user_id}")
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


@router.delete("/{user_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_user(user_id: UUID, admin: AdminUser, services: ServicesDep) -> None:
    await services.admin.delete_user(admin, user_id)
