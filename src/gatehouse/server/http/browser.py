"""Browser sessions over HTTP: the session cookie and the CSRF rules of the requests it rides.

The cookie is `__Host-gatehouse_session` when the issuer is https (and the cookie Secure),
else `gatehouse_session`; always `HttpOnly`, `SameSite=Lax`, `Path=/`, no `Domain`, and
`Secure` unless `GATEHOUSE_COOKIE_SECURE=false`. Its value is an opaque token; storage keeps
its digest.

An unsafe request (POST, PUT, PATCH, DELETE) authenticated by the cookie must show that our
own page sent it (`check_csrf`):

1. `Sec-Fetch-Site: cross-site` is refused (browsers send it on every request);
2. an `Origin` that is neither the issuer's origin nor the request's own scheme://Host is
   refused (ports count: SameSite=Lax does not separate two ports of one host);
3. `X-CSRF-Token` must be the session's token (an HMAC of its id, given at login), which a
   page of another origin cannot read.

Requests with a bearer token or an API key carry their credential explicitly, so a page of
another origin cannot make a browser send one; they are not subject to these checks.
"""

from __future__ import annotations

from urllib.parse import urlsplit
from uuid import UUID

from fastapi import Request, Response

from gatehouse.server.config import Settings
from gatehouse.server.errors import CsrfError
from gatehouse.server.wiring import Services

SESSION_COOKIE = "gatehouse_session"
HOST_SESSION_COOKIE = "__Host-gatehouse_session"
API_KEY_COOKIE = "gatehouse_api_key"
CSRF_HEADER = "x-csrf-token"
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})


def session_cookie_name(settings: Settings) -> str:
    secure_host = settings.issuer.startswith("https://") and settings.cookie_secure
    return HOST_SESSION_COOKIE if secure_host else SESSION_COOKIE


def set_session_cookie(response: Response, settings: Settings, value: str) -> None:
    response.set_cookie(
        session_cookie_name(settings),
        value,
        max_age=int(settings.refresh_absolute_ttl.total_seconds()),
        path="/",
        secure=settings.cookie_secure,
        httponly=True,
        samesite="lax",
    )


def clear_session_cookie(response: Response, settings: Settings) -> None:
    response.delete_cookie(
        session_cookie_name(settings),
        path="/",
        secure=settings.cookie_secure,
        httponly=True,
        samesite="lax",
    )


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def check_origin(request: Request, settings: Settings) -> None:
    """Rules 1 and 2 above (the cookie login runs them too: no logging in from elsewhere).

    Raises: CsrfError.
    """
    if request.headers.get("sec-fetch-site", "").lower() == "cross-site":
        raise CsrfError
    origin = request.headers.get("origin")
    if origin is None:
        return
    allowed = {_origin(settings.issuer)}
    host = request.headers.get("host")
    if host:
        allowed.add(f"{request.url.scheme}://{host}".lower())
    if origin.lower() not in allowed:
        raise CsrfError


def check_unsafe_origin(request: Request, settings: Settings) -> None:
    """Rules 1 and 2 for an unsafe request (an API key sent as a cookie gets these).

    Raises: CsrfError.
    """
    if request.method not in _SAFE_METHODS:
        check_origin(request, settings)


def check_csrf(request: Request, services: Services, session_id: UUID) -> None:
    """Rules 1-3 for an unsafe request that rides the session cookie.

    Raises: CsrfError.
    """
    if request.method in _SAFE_METHODS:
        return
    check_origin(request, services.settings)
    token = request.headers.get(CSRF_HEADER, "")
    if not services.sessions.csrf_matches(session_id, token):
        raise CsrfError
