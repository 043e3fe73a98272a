"""The verifier's one error tree: catch `InvalidTokenError` to refuse any bad token.

InvalidTokenError              the root; `reason` says why, never echoing the token
├── MalformedTokenError        not a JWT, bad header or encoding, `crit`, over 8 KiB
├── UnknownKeyError            no key with the token's `kid` (after the JWKS was asked)
├── InvalidSignatureError      signature does not verify, or algorithm not allowed
├── InvalidClaimsError         issuer, audience, type, a header or a required claim is wrong
├── ExpiredTokenError          `exp` has passed (or `nbf`/`iat` is in the future)
├── InactiveTokenError         introspection says the token is not active (revoked, ended)
└── VerifierUnavailableError   the answer could not be had (introspection endpoint down or
                               refusing our key): fail closed, but not the token's fault
"""


class InvalidTokenError(Exception):
    """A token that must not be accepted."""

    code = "invalid_token"

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class MalformedTokenError(InvalidTokenError):
    """The token is not a well-formed JWS compact serialisation."""


class UnknownKeyError(InvalidTokenError):
    """The token names a key (`kid`) the verifier does not hold."""


class InvalidSignatureError(InvalidTokenError):
    """The signature does not verify, or the algorithm is not on the allow-list."""


class InvalidClaimsError(InvalidTokenError):
    """A claim or header value is missing or wrong."""


class ExpiredTokenError(InvalidTokenError):
    """The token is outside its validity window."""


class InactiveTokenError(InvalidTokenError):
    """The authorization server says the token is not active (RFC 7662 `active: false`)."""


class VerifierUnavailableError(InvalidTokenError):
    """The token could not be checked (the introspection endpoint is unreachable or refused
    our credentials). The token is refused, since nothing vouches for it."""

    code = "temporarily_unavailable"
