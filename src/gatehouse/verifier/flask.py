"""Flask adapter: `require_token`, a view decorator that authenticates the bearer token.

    from gatehouse.verifier import TokenVerifier
    from gatehouse.verifier.flask import require_token

    verifier = TokenVerifier("https://auth.example.com", "my-api")

    @app.get("/admin")
    @require_token(verifier, roles=["admin"])
    def admin():
        return {"user": flask.g.gatehouse_claims.subject}

The claims go to `flask.g.gatehouse_claims`. A missing or refused token is 401 with a
`WWW-Authenticate: Bearer` challenge (`error="invalid_token"` for a bad or expired one),
missing roles or scopes 403 with `error="insufficient_scope"` (RFC 6750 s3), an
introspection endpoint that cannot answer 503; bodies are RFC 9457 problem+json.

This module only translates; it is not imported by `gatehouse.verifier`. Flask views are
sync, so the verifier's sync `verify` runs (a JWKS fetch, when one is due, blocks that one
request's thread).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterable
from typing import ParamSpec

from flask import Response, g, request
from flask.typing import ResponseReturnValue

from gatehouse.verifier.errors import InvalidTokenError
from gatehouse.verifier.protection import (
    NO_TOKEN,
    Refusal,
    Verifier,
    bearer_token,
    lacking,
    refused,
)

P = ParamSpec("P")


def _response(refusal: Refusal) -> Response:
    response = Response(
        json.dumps(refusal.problem()),
        status=refusal.status,
        mimetype="application/problem+json",
    )
    challenge = refusal.challenge
    if challenge is not None:
        response.headers["WWW-Authenticate"] = challenge
    response.headers["Cache-Control"] = "no-store"
    return response


def require_token(
    verifier: Verifier, roles: Iterable[str] = (), scopes: Iterable[str] = ()
) -> Callable[[Callable[P, ResponseReturnValue]], Callable[P, ResponseReturnValue]]:
    """Decorate a view so it runs only for a valid bearer token holding every one of
    `roles` and `scopes`; its claims are in `flask.g.gatehouse_claims`."""
    needed_roles, needed_scopes = tuple(roles), tuple(scopes)

    def decorate(view: Callable[P, ResponseReturnValue]) -> Callable[P, ResponseReturnValue]:
        @functools.wraps(view)
        def protected(*args: P.args, **kwargs: P.kwargs) -> ResponseReturnValue:
            token = bearer_token(request.headers.get("Authorization"))
            if token is None:
                return _response(NO_TOKEN)
            try:
                claims = verifier.verify(token)
            except InvalidTokenError as exc:
                return _response(refused(exc))
            refusal = lacking(claims, needed_roles, needed_scopes)
            if refusal is not None:
                return _response(refusal)
            g.gatehouse_claims = claims
            return view(*args, **kwargs)

        return protected

    return decorate


__all__ = ["require_token"]
