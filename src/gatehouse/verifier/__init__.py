"""Verify Gatehouse access tokens in any Python service, without the server installed.

    from gatehouse.verifier import AccessTokenVerifier, InvalidTokenError, StaticKeys

A later issue adds a JWKS cache, introspection and FastAPI/Flask adapters here.
"""

from gatehouse.verifier.errors import (
    ExpiredTokenError,
    InvalidClaimsError,
    InvalidSignatureError,
    InvalidTokenError,
    MalformedTokenError,
    UnknownKeyError,
)
from gatehouse.verifier.jwt import (
    ACCESS_TOKEN_TYPE,
    DEVICE_KIND,
    USER_KIND,
    AccessTokenClaims,
    AccessTokenVerifier,
    KeyResolver,
    PublicKey,
    StaticKeys,
    unverified_key_id,
)

__all__ = [
    "AccessTokenVerifier",
    "AccessTokenClaims",
    "KeyResolver",
    "StaticKeys",
    "PublicKey",
    "ACCESS_TOKEN_TYPE",
    "USER_KIND",
    "DEVICE_KIND",
    "unverified_key_id",
    "InvalidTokenError",
    "MalformedTokenError",
    "UnknownKeyError",
    "InvalidSignatureError",
    "InvalidClaimsError",
    "ExpiredTokenError",
]
