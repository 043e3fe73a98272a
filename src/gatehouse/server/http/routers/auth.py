"""/auth: register, log in, refresh, log out (JSON API for first-party programs), and the
cookie session of browser front ends (`/auth/session`; see http/browser.py for the cookie
and its CSRF rules)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response, status

from gatehouse.server.http.browser import check_origin, clear_session_cookie, set_session_cookie
from gatehouse.server.http.deps import ServicesDep, SessionPrincipal, client_info, client_ip
from gatehouse.server.http.schemas import (
    CookieSessionOut,
    LoginRequest,
    RefreshRequest,
    RegisterRequest,
    TokenPairOut,
    UserOut,
)

router = APIRouter(prefix="/auth", tags=["auth"])


def no_store(response: Response) -> None:
    """RFC 6749 s5.1: responses that carry tokens must not be cached."""
    response.headers["Cache-Control"] = "no-store"
    response.headers["Pragma"] = "no-cache"


@router.post("/register", status_code=status.HTTP_201_CREATED)
async def register(body: RegisterRequest, request: Request, services: ServicesDep) -> UserOut:
    """Create an account. A taken username answers 409 (this reveals that it exists).

    Every attempt counts toward the address's registration limit (taken names included,
    so the 409 cannot be used to enumerate names quickly): past it, 429 `rate_limited`.
    An address refused for its failed credential attempts is refused here too.
    """
    ip = client_ip(request)
    await services.guard.check_address(ip)
    await services.guard.registration(ip)
    user = await services.accounts.register(body.username, body.password, email=body.email)
    return UserOut.of(user)


@router.post("/login")
async def login(
    body: LoginRequest, request: Request, response: Response, services: ServicesDep
) -> TokenPairOut:
    """Check username and password; open a session for this device; return a token pair.

    Too many failures lock the name (429 `account_locked`); too many from one address
    refuse the address (429 `rate_limited`); both with Retry-After.
    """
    user = await services.accounts.authenticate(body.username, body.password, ip=client_ip(request))
    pair = await services.sessions.open(user, client_info(request, body.device_name))
    no_store(response)
    return TokenPairOut.of(pair)


@router.post("/refresh")
async def refresh(
    body: RefreshRequest, request: Request, response: Response, services: ServicesDep
) -> TokenPairOut:
    """Trade a refresh token for a new pair. The old token stops working at once. A wrong
    token counts toward the address's failed attempts."""
    async with services.guard.attempt(client_ip(request)):
        pair = await services.sessions.refresh(body.refresh_token)
    no_store(response)
    return TokenPairOut.of(pair)


@router.post("/logout", status_code=status.HTTP_204_NO_CONTENT)
async def logout(principal: SessionPrincipal, services: ServicesDep) -> None:
    """End the session of this access token."""
    assert principal.session_id is not None  # noqa: S101 - SessionPrincipal guarantees it
    await services.sessions.logout(principal.user.id, principal.session_id)


@router.post("/logout-all", status_code=status.HTTP_204_NO_CONTENT)
async def logout_all(principal: SessionPrincipal, services: ServicesDep) -> None:
    """End every session of the caller, this one included."""
    await services.sessions.logout_all(principal.user.id)


@router.post("/session")
async def cookie_login(
    body: LoginRequest, request: Request, response: Response, services: ServicesDep
) -> CookieSessionOut:
    """Log a browser in: a fresh session behind an HttpOnly cookie, and its CSRF token.

    No token is in the body. Send the CSRF token as `X-CSRF-Token` on every unsafe request
    that rides the cookie. A login from a page of another origin is refused (403).
    """
    check_origin(request, services.settings)
    user = await services.accounts.authenticate(body.username, body.password, ip=client_ip(request))
    login = await services.sessions.open_cookie(user, client_info(request, body.device_name))
    set_session_cookie(response, services.settings, login.cookie)
    no_store(response)
    return CookieSessionOut.of(login, user)


@router.delete("/session", status_code=status.HTTP_204_NO_CONTENT)
async def cookie_logout(
    principal: SessionPrincipal, response: Response, services: ServicesDep
) -> None:
    """End this browser session (the CSRF rules apply) and clear its cookie."""
    assert principal.session_id is not None  # noqa: S101 - SessionPrincipal guarantees it
    await services.sessions.logout(principal.user.id, principal.session_id)
    clear_session_cookie(response, services.settings)
