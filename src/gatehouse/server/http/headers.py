"""Security headers on every response the server sends, errors and 404s included.

`SecurityHeaders` wraps the whole application (outside Starlette's error middleware, so a
500 carries them too) and adds, to each response start:

- always: `X-Content-Type-Options: nosniff`, `Referrer-Policy: no-referrer`,
  `X-Frame-Options: DENY`, `Cross-Origin-Opener-Policy: same-origin`;
- `Strict-Transport-Security` (a year, subdomains) when the issuer is https;
- `Content-Security-Policy: default-src 'none'; frame-ancestors 'none'` and
  `Cache-Control: no-store` unless the route set its own (the docs page sets a CSP that
  lets its scripts run; the JWKS and the docs assets may be cached). So every response that
  carries a token, a key, a secret or user data is `no-store` without each route having to
  remember it.

The HTTP protocol's own 400 (a request too malformed to reach the app) sends the same
base set; see `protocol.py`.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

BASE_SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'"),
    (b"cache-control", b"no-store"),
)
# Defaults a route may replace by setting the header itself.
_API_CSP, _NO_STORE = BASE_SECURITY_HEADERS[-2:]
_OVERRIDABLE = frozenset({_API_CSP[0], _NO_STORE[0]})
HSTS = (b"strict-transport-security", b"max-age=31536000; includeSubDomains")


class SecurityHeaders:
    """Pure ASGI middleware adding the headers above to every HTTP response."""

    def __init__(self, app: ASGIApp, *, hsts: bool) -> None:
        self.app = app
        fixed = [h for h in BASE_SECURITY_HEADERS if h[0] not in _OVERRIDABLE]
        self._fixed = (*fixed, HSTS) if hsts else tuple(fixed)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        fixed = self._fixed

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                # Starlette hands over a fresh list per response; anything else is copied.
                raw = message.get("headers")
                headers = raw if type(raw) is list else list(raw or ())
                csp = cache = False
                for name, _ in headers:  # ASGI header names are lower-case
                    if name == b"content-security-policy":
                        csp = True
                    elif name == b"cache-control":
                        cache = True
                if not csp:
                    headers.append(_API_CSP)
                if not cache:
                    headers.append(_NO_STORE)
                headers.extend(fixed)
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)
