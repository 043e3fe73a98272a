"""FastAPI dependencies and their `Annotated` aliases; the only place they are defined."""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import OAuth2PasswordBearer

from gatehouse.server.accounts.models import User
from gatehouse.server.errors import NotAuthenticatedError, PermissionDeniedError
from gatehouse.server.sessions.models import ClientInfo, Principal
from gatehouse.server.wiring import Services

# Declares the scheme for OpenAPI so Swagger UI's "Authorize" logs in at /oauth/token; the
# token itself is checked by `current_principal` below.
oauth2_scheme = OAuth2PasswordBearer(
    tokenUrl="/oauth/token", refreshUrl="/oauth/token", auto_error=False
)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]


async def current_principal(
    services: ServicesDep, token: Annotated[str | None, Depends(oauth2_scheme)]
) -> Principal:
    """The live session behind the bearer token.

    Raises:
        NotAuthenticatedError: no bearer token.
        InvalidAccessTokenError: the token, its session or its user is not valid.
    """
    if not token:
        raise NotAuthenticatedError
    return await services.sessions.authenticate(token)


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]


async def current_user(principal: CurrentPrincipal) -> User:
    return principal.user


CurrentUser = Annotated[User, Depends(current_user)]


async def admin_user(principal: CurrentPrincipal) -> User:
    """Raises: PermissionDeniedError when the caller is not an admin."""
    if not principal.user.is_admin:
        raise PermissionDeniedError
    return principal.user


AdminUser = Annotated[User, Depends(admin_user)]


def client_info(request: Request, device_name: str | None = None) -> ClientInfo:
    """Where a login comes from. The user agent is stored cut to 512 characters."""
    agent = request.headers.get("user-agent")
    return ClientInfo(
        device_name=device_name,
        ip_address=request.client.host if request.client else None,
        user_agent=_CONTROL.sub("", agent)[:512] if agent else None,
    )
