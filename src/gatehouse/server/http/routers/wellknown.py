"""/.well-known: the JWKS and the discovery documents (RFC 8414, OpenID Connect)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response

from gatehouse.server.http.deps import ServicesDep
from gatehouse.server.tokens.keyset import SIGNING_ALGORITHM

router = APIRouter(prefix="/.well-known", tags=["discovery"])

# Short enough that a rotation is seen soon; verifiers also refetch on an unknown `kid`.
_JWKS_MAX_AGE = 300


@router.get("/jwks.json")
async def jwks(response: Response, services: ServicesDep) -> dict[str, Any]:
    """Public signing keys (no private material), newest first."""
    keyset = await services.keys.current()
    response.headers["Cache-Control"] = f"public, max-age={_JWKS_MAX_AGE}"
    return keyset.jwks()


def _metadata(services: ServicesDep) -> dict[str, Any]:
    issuer = services.settings.issuer
    return {
        "issuer": issuer,
        "jwks_uri": f"{issuer}/.well-known/jwks.json",
        "token_endpoint": f"{issuer}/oauth/token",
        "revocation_endpoint": f"{issuer}/oauth/revoke",
        "introspection_endpoint": f"{issuer}/oauth/introspect",
        "grant_types_supported": ["password", "refresh_token", "client_credentials"],
        "response_types_supported": [],
        # Public first-party clients (password, refresh) and API keys (client_credentials).
        "token_endpoint_auth_methods_supported": [
            "none",
            "client_secret_basic",
            "client_secret_post",
        ],
        "revocation_endpoint_auth_methods_supported": ["none"],
        # And a bearer access token or API key of an admin or of a key with `introspect`.
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic"],
        "access_token_signing_alg_values_supported": [SIGNING_ALGORITHM],
        "id_token_signing_alg_values_supported": [SIGNING_ALGORITHM],
        "subject_types_supported": ["public"],
    }


@router.get("/openid-configuration")
async def openid_configuration(services: ServicesDep) -> dict[str, Any]:
    return _metadata(services)


@router.get("/oauth-authorization-server")
async def oauth_authorization_server(services: ServicesDep) -> dict[str, Any]:
    return _metadata(services)
