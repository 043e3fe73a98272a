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
_OVERRIDABLE = frozenset({b"content-security-policy", b"cache-control"})
HSTS = (b"strict-transport-security", b"max-age=31536000; includeSubDomains")


class SecurityHeaders:
    """Pure ASGI middleware adding the headers above to every HTTP response."""

    def __init__(self, app: ASGIApp, *, hsts: bool) -> None:
        self.app = app
        fixed = [h for h in BASE_SECURITY_HEADERS if h[0] not in _OVERRIDABLE]
        self._fixed = (*fixed, HSTS) if hsts else tuple(fixed)
        self._defaults = tuple(h for h in BASE_SECURITY_HEADERS if h[0] in _OVERRIDABLE)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", ()))
                present = {name.lower() for name, _ in headers}
                headers += [h for h in self._defaults if h[0] not in present]
                headers += self._fixed
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)
