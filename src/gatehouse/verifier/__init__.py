"""Verify Gatehouse access tokens in any Python service, without the server installed.

    from gatehouse.verifier import TokenVerifier, InvalidTokenError

    verifier = TokenVerifier("https://auth.example.com", "my-api")   # JWKS by discovery
    claims = verifier.verify(token)            # or: await verifier.averify(token)

`TokenVerifier` follows the issuer's JWKS (cached, refetched on key rotation);
`IntrospectionVerifier` asks Gatehouse on each (briefly cached) call, for instant
revocation; `AccessTokenVerifier` over `StaticKeys` checks with keys you load yourself.
All raise subclasses of `InvalidTokenError`. The framework adapters are separate modules,
not imported here: `gatehouse.verifier.fastapi` and `gatehouse.verifier.flask`.
"""

from gatehouse.verifier.errors import (
    ExpiredTokenError,
    InactiveTokenError,
    InvalidClaimsError,
    InvalidSignatureError,
    InvalidTokenError,
    MalformedTokenError,
    UnknownKeyError,
    VerifierUnavailableError,
)
from gatehouse.verifier.introspection import IntrospectionVerifier
from gatehouse.verifier.jwks import TokenVerifier
from gatehouse.verifier.jwt import (
    ACCESS_TOKEN_TYPE,
    DEVICE_KIND,
    MAX_TOKEN_BYTES,
    USER_KIND,
    AccessTokenClaims,
    AccessTokenVerifier,
    KeyResolver,
    PublicKey,
    StaticKeys,
    unverified_key_id,
)
from gatehouse.verifier.protection import AsyncVerifier, Verifier

__all__ = [
    "TokenVerifier",
    "IntrospectionVerifier",
    "AccessTokenVerifier",
    "AccessTokenClaims",
    "Verifier",
    "AsyncVerifier",
    "KeyResolver",
    "StaticKeys",
    "PublicKey",
    "ACCESS_TOKEN_TYPE",
    "USER_KIND",
    "DEVICE_KIND",
    "MAX_TOKEN_BYTES",
    "unverified_key_id",
    "InvalidTokenError",
    "MalformedTokenError",
    "UnknownKeyError",
    "InvalidSignatureError",
    "InvalidClaimsError",
    "ExpiredTokenError",
    "InactiveTokenError",
    "VerifierUnavailableError",
]
