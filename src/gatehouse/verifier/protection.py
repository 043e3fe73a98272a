"""What the FastAPI and Flask adapters share, free of any framework: the `Verifier`
protocol they accept, the bearer token of an `Authorization` header, and the RFC 6750
answer (status, `WWW-Authenticate` challenge, problem detail) for a refused request.

Adapters translate a `Refusal` into their framework's response; they decide nothing here.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from gatehouse.verifier.errors import InvalidTokenError, VerifierUnavailableError
from gatehouse.verifier.jwt import AccessTokenClaims


@runtime_checkable
class Verifier(Protocol):
    """Anything that turns a token into claims or raises `InvalidTokenError`:
    `TokenVerifier`, `AccessTokenVerifier`, `IntrospectionVerifier`."""

    def verify(self, token: str) -> AccessTokenClaims: ...


@runtime_checkable
class AsyncVerifier(Protocol):
    """A verifier with an awaitable twin, used by async adapters so no fetch blocks a loop."""

    async def averify(self, token: str) -> AccessTokenClaims: ...


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a request is refused, as RFC 6750 s3 says to answer it."""

    status: int
    title: str
    detail: str
    #: RFC 6750 s3.1 error code; None when the request carried no token at all.
    error: str | None = None
    #: The scope (here: roles or scopes) the resource needs, for `insufficient_scope`.
    scope: tuple[str, ...] = ()

    @property
    def challenge(self) -> str | None:
        """The `WWW-Authenticate` value (None for a 503: no challenge will help)."""
        if self.status == 503:
            return None
        params = []
        if self.error is not None:
            params.append(f'error="{self.error}"')
            params.append(f'error_description="{_quoted(self.detail)}"')
        if self.scope:
            params.append(f'scope="{_quoted(" ".join(self.scope))}"')
        return "Bearer " + ", ".join(params) if params else "Bearer"

    def problem(self) -> dict[str, object]:
        """An RFC 9457 problem body, with the RFC 6750 error code when there is one."""
        body: dict[str, object] = {
            "type": "about:blank",
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
        }
        if self.error is not None:
            body["error"] = self.error
        return body


NO_TOKEN = Refusal(401, "Unauthorized", "A bearer token is required.")


def _quoted(text: str) -> str:
    # RFC 7230 quoted-string: no quote or backslash inside, printable ASCII only.
    return "".join(c for c in text if c not in '"\\' and " " <= c <= "~")


def bearer_token(authorization: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header (scheme case-insensitive)."""
    if not authorization:
        return None
    scheme, _, credential = authorization.partition(" ")
    credential = credential.strip()
    if scheme.lower() != "bearer" or not credential:
        return None
    return credential


def refused(exc: InvalidTokenError) -> Refusal:
    """The answer to a token the verifier refused."""
    if isinstance(exc, VerifierUnavailableError):
        return Refusal(503, "Service Unavailable", "The token cannot be checked right now.")
    # RFC 6750 s3.1: invalid_token for expired, revoked, malformed or otherwise invalid.
    return Refusal(401, "Unauthorized", exc.reason, error="invalid_token")


def lacking(
    claims: AccessTokenClaims, roles: Iterable[str], scopes: Iterable[str]
) -> Refusal | None:
    """A 403 when the claims lack any of `roles` (every one is required) or `scopes`."""
    needed_roles, needed_scopes = tuple(roles), tuple(scopes)
    if not claims.roles.issuperset(needed_roles):
        return Refusal(
            403,
            "Forbidden",
            "The token lacks a required role.",
            error="insufficient_scope",
            scope=needed_roles,
        )
    if not claims.scopes.issuperset(needed_scopes):
        return Refusal(
            403,
            "Forbidden",
            "The token lacks a required scope.",
            error="insufficient_scope",
            scope=needed_scopes,
        )
    return None
