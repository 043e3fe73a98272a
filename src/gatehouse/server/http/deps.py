"""FastAPI dependencies and their `Annotated` aliases; the only place they are defined."""

from __future__ import annotations

import base64
import binascii
import re
from typing import Annotated
from urllib.parse import unquote_plus

from fastapi import Depends, Query, Request
from fastapi.security import OAuth2PasswordBearer

from gatehouse.server.accounts.models import User
from gatehouse.server.audit.models import Actor
from gatehouse.server.devices.models import DeviceRecord
from gatehouse.server.errors import (
    InvalidClientError,
    NotAuthenticatedError,
    PermissionDeniedError,
    SessionRequiredError,
)
from gatehouse.server.http.browser import (
    API_KEY_COOKIE,
    check_csrf,
    check_unsafe_origin,
    session_cookie_name,
)
from gatehouse.server.http.denials import note_caller
from gatehouse.server.http.middleware import API_KEY_SCOPE
from gatehouse.server.sessions.models import ClientInfo, Principal
from gatehouse.server.wiring import Services

# Declares the scheme for OpenAPI so Swagger UI's "Authorize" logs in at /oauth/token; the
# token itself is checked by `current_principal` below.
oauth2_scheme = OAuth2PasswordBearer(
    tokenUrl="/oauth/token", refreshUrl="/oauth/token", auto_error=False
)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


async def get_services(request: Request) -> Services:
    # Async on purpose: FastAPI runs sync dependencies in a thread pool (~70 us each).
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]

# The query parameters of every paged listing.
PageLimit = Annotated[int, Query(ge=1, le=200)]
PageCursor = Annotated[str | None, Query(max_length=512)]


def services_of(request: Request) -> Services:
    """The services, for the hottest routes that skip dependency solving (tens of
    microseconds per dependency)."""
    services: Services = request.app.state.services
    return services


async def current_principal(
    request: Request, token: Annotated[str | None, Depends(oauth2_scheme)]
) -> Principal:
    """The live caller behind the request's credential, in this order: `Authorization:
    Bearer` with an access token or an API key; an API key in `X-API-Key` (or `?api_key=`,
    or the `gatehouse_api_key` cookie, where settings allow); the browser-session cookie
    (with the CSRF rules of http/browser.py). See `server/callers.py`.

    Every protected request resolves this, so it is kept to one dependency below it
    (FastAPI's dependency solving costs tens of microseconds per node).

    Raises:
        NotAuthenticatedError: no credential.
        InvalidAccessTokenError: the credential, its session or key, or its user is not valid.
    """
    services: Services = request.app.state.services
    settings = services.settings
    if token:
        return await services.authenticator.authenticate(token, ip=client_ip(request))
    api_key = request.headers.get("x-api-key")
    if not api_key and settings.api_key_in_query:
        api_key = request.scope.get(API_KEY_SCOPE)
    if api_key:
        return await services.authenticator.authenticate_key(str(api_key), ip=client_ip(request))
    if settings.api_key_in_cookie and (api_key := request.cookies.get(API_KEY_COOKIE)):
        # A cookie rides along on requests a foreign page makes: unsafe ones must come
        # from our own origin (there is no CSRF token for keys).
        check_unsafe_origin(request, settings)
        return await services.authenticator.authenticate_key(api_key, ip=client_ip(request))
    cookie = request.cookies.get(session_cookie_name(settings))
    if cookie:
        principal = await services.sessions.authenticate_cookie(cookie)
        assert principal.session_id is not None  # noqa: S101 - a cookie names a session
        check_csrf(request, services, principal.session_id)
        return principal
    raise NotAuthenticatedError


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]


async def session_principal(principal: CurrentPrincipal) -> Principal:
    """Raises: SessionRequiredError when the caller used an API key, not a login."""
    if principal.session_id is None:
        raise SessionRequiredError
    return principal


SessionPrincipal = Annotated[Principal, Depends(session_principal)]


async def admin_principal(request: Request, principal: CurrentPrincipal) -> Principal:
    """Raises: PermissionDeniedError when the caller may not act as an admin (a non-admin,
    or an admin's API key without the `admin` scope); the audit trail records it with the
    caller as actor (`http/denials.py`)."""
    if not principal.is_admin:
        note_caller(request, principal)
        raise PermissionDeniedError
    return principal


AdminPrincipal = Annotated[Principal, Depends(admin_principal)]


async def admin_user(principal: AdminPrincipal) -> User:
    return principal.user


AdminUser = Annotated[User, Depends(admin_user)]


async def current_device(
    request: Request, token: Annotated[str | None, Depends(oauth2_scheme)]
) -> DeviceRecord:
    """The live device behind `Authorization: Bearer <device token>`.

    Raises:
        NotAuthenticatedError: no bearer token.
        InvalidAccessTokenError: not a device token, or its device is gone.
        DeviceSuspendedError, DeviceRevokedError.
    """
    if not token:
        raise NotAuthenticatedError("This request needs a device token.")
    services: Services = request.app.state.services
    return await services.authenticator.authenticate_device(token)


CurrentDevice = Annotated[DeviceRecord, Depends(current_device)]


def client_ip(request: Request) -> str | None:
    """The client's address, as `http/client_address.py` decided it (the peer, unless the
    peer is a trusted proxy): the one value limits, sessions and the audit trail read."""
    return request.client.host if request.client else None


def anonymous(request: Request) -> Actor:
    """The audit actor of a caller without credentials: only its address."""
    return Actor(kind="anonymous", ip=request.client.host if request.client else None)


def actor_of(request: Request, principal: Principal | DeviceRecord) -> Actor:
    """The audit actor of an authenticated caller (a user or a device) and its address."""
    ip = request.client.host if request.client else None
    if isinstance(principal, DeviceRecord):
        return Actor(kind="device", id=str(principal.device.id), ip=ip)
    return Actor(kind="user", id=str(principal.user.id), ip=ip)


def basic_credentials(request: Request) -> tuple[str, str] | None:
    """OAuth client credentials from `Authorization: Basic`, or None when not sent that way.

    RFC 6749 s2.3.1: each part is form-urlencoded before base64, so it is decoded after.

    Raises:
        InvalidClientError: a Basic header that does not decode to `id:secret`.
    """
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise InvalidClientError from None
    client_id, colon, client_secret = decoded.partition(":")
    if not colon:
        raise InvalidClientError
    return unquote_plus(client_id), unquote_plus(client_secret)


def client_info(request: Request, device_name: str | None = None) -> ClientInfo:
    """Where a login comes from. The user agent is stored cut to 512 characters."""
    agent = request.headers.get("user-agent")
    return ClientInfo(
        device_name=device_name,
        ip_address=request.client.host if request.client else None,
        user_agent=_CONTROL.sub("", agent)[:512] if agent else None,
    )
