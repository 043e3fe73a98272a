"""FastAPI adapter: dependencies that authenticate a request by its bearer token.

    from gatehouse.verifier import TokenVerifier
    from gatehouse.verifier.fastapi import Authenticated, require_roles

    verifier = TokenVerifier("https://auth.example.com", "my-api")

    @app.get("/me")
    async def me(claims: AccessTokenClaims = Depends(Authenticated(verifier))) -> dict: ...

    @app.get("/admin", dependencies=[Depends(require_roles(verifier, "admin"))])
    async def admin() -> dict: ...

A missing or refused token is 401 with a `WWW-Authenticate: Bearer` challenge
(`error="invalid_token"` for a bad or expired one), missing roles or scopes are 403 with
`error="insufficient_scope"` (RFC 6750 s3), and an introspection endpoint that cannot answer
is 503. The routes show in OpenAPI under the `GatehouseBearer` HTTP bearer scheme.

This module only translates: every decision is the verifier's or `protection`'s. It is not
imported by `gatehouse.verifier`, so services without FastAPI never load it. (No
`from __future__ import annotations` here: FastAPI reads the dependency's annotations.)
"""

from collections.abc import Iterable
from typing import Annotated

from fastapi import HTTPException, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from gatehouse.verifier.errors import InvalidTokenError
from gatehouse.verifier.jwt import AccessTokenClaims
from gatehouse.verifier.protection import (
    NO_TOKEN,
    AsyncVerifier,
    Refusal,
    Verifier,
    lacking,
    refused,
)

#: The OpenAPI security scheme every protected route names.
bearer_scheme = HTTPBearer(
    auto_error=False,
    scheme_name="GatehouseBearer",
    bearerFormat="JWT",
    description="A Gatehouse access token: `Authorization: Bearer <token>`.",
)


def _http_error(refusal: Refusal) -> HTTPException:
    challenge = refusal.challenge
    headers = {"WWW-Authenticate": challenge} if challenge is not None else None
    return HTTPException(status_code=refusal.status, detail=refusal.detail, headers=headers)


class Authenticated:
    """A dependency yielding the request's `AccessTokenClaims`, or answering 401/403/503.

    `roles` and `scopes` (each one required) make it also check the claims; the helpers
    `require_roles` and `require_scopes` say the same thing shorter.

    A verifier with `averify` (`TokenVerifier`, `IntrospectionVerifier`) is awaited, so a
    JWKS fetch or an introspection call never blocks the event loop; one with only `verify`
    (`AccessTokenVerifier` over `StaticKeys`) is called inline and must not do I/O.
    """

    def __init__(
        self, verifier: Verifier, *, roles: Iterable[str] = (), scopes: Iterable[str] = ()
    ) -> None:
        self.verifier = verifier
        self.roles = tuple(roles)
        self.scopes = tuple(scopes)
        # Decided once: a Protocol isinstance check costs microseconds on every request.
        self._async = verifier if isinstance(verifier, AsyncVerifier) else None

    async def __call__(
        self,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Security(bearer_scheme)],
    ) -> AccessTokenClaims:
        if credentials is None or not credentials.credentials:
            raise _http_error(NO_TOKEN)
        try:
            if self._async is not None:
                claims = await self._async.averify(credentials.credentials)
            else:
                claims = self.verifier.verify(credentials.credentials)
        except InvalidTokenError as exc:
            raise _http_error(refused(exc)) from None
        refusal = lacking(claims, self.roles, self.scopes)
        if refusal is not None:
            raise _http_error(refusal)
        return claims


def require_roles(verifier: Verifier, *roles: str) -> Authenticated:
    """A dependency yielding the claims of a token that holds every one of `roles`."""
    return Authenticated(verifier, roles=roles)


def require_scopes(verifier: Verifier, *scopes: str) -> Authenticated:
    """A dependency yielding the claims of a token whose `scope` has every one of `scopes`."""
    return Authenticated(verifier, scopes=scopes)


__all__ = ["Authenticated", "require_roles", "require_scopes", "bearer_scheme"]
