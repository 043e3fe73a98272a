"""The verifier's one error tree: catch `InvalidTokenError` to refuse any bad token.

InvalidTokenError            the root; `reason` says why, never echoing the token
├── MalformedTokenError      not a JWT, bad header, bad encoding
├── UnknownKeyError          no key with the token's `kid`
├── InvalidSignatureError    signature does not verify, or algorithm not allowed
├── InvalidClaimsError       issuer, audience, type or a required claim is wrong
└── ExpiredTokenError        `exp` has passed (or `nbf`/`iat` is in the future)
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
