"""Access-token verification: the one definition of a valid Gatehouse access token.

Resource servers and the Gatehouse server itself use this module, so a token that one
accepts the other accepts too. It depends on PyJWT and `cryptography` only. Time checks use
an injected clock rather than PyJWT's, so tests and callers control "now".
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeGuard

import jwt
from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePublicKey
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

from gatehouse.verifier.errors import (
    ExpiredTokenError,
    InvalidClaimsError,
    InvalidSignatureError,
    MalformedTokenError,
    UnknownKeyError,
)

PublicKey = Ed25519PublicKey | EllipticCurvePublicKey | RSAPublicKey

#: RFC 9068 s2.1: access tokens carry this `typ` header so they cannot pass for ID tokens.
ACCESS_TOKEN_TYPE = "at+jwt"
DEFAULT_ALGORITHMS: tuple[str, ...] = ("EdDSA",)
#: The `kind` claim: whom the token stands for. Tokens without one are users' (older ones).
USER_KIND = "user"
DEVICE_KIND = "device"
_REQUIRED_CLAIMS = ("iss", "sub", "aud", "exp", "iat", "jti")


class KeyResolver(Protocol):
    """Finds the public key for a `kid`; returns None when it holds no such key."""

    def public_key(self, kid: str) -> PublicKey | None: ...


@dataclass(frozen=True, slots=True)
class StaticKeys:
    """A fixed map of `kid` to public key, for callers that load keys themselves."""

    keys: dict[str, PublicKey]

    def public_key(self, kid: str) -> PublicKey | None:
        return self.keys.get(kid)


@dataclass(frozen=True, slots=True)
class AccessTokenClaims:
    """The checked claims of an access token."""

    subject: str
    issuer: str
    audience: tuple[str, ...]
    expires_at: int
    issued_at: int
    token_id: str
    session_id: str | None
    roles: frozenset[str]
    key_id: str
    raw: dict[str, Any]
    # "user" (a session or an API key's client credentials) or "device" (a licensed machine).
    kind: str = USER_KIND

    @property
    def is_device(self) -> bool:
        return self.kind == DEVICE_KIND


def _unverified_header(token: str) -> tuple[dict[str, Any], str]:
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError as exc:
        raise MalformedTokenError("token is not a well-formed JWT") from exc
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid:
        raise MalformedTokenError("token header has no key id")
    return header, kid


def unverified_key_id(token: str) -> str:
    """Return the `kid` of a token's header without verifying anything.

    Raises:
        MalformedTokenError: the token or its header cannot be parsed, or has no `kid`.
    """
    return _unverified_header(token)[1]


class AccessTokenVerifier:
    """Checks signature, algorithm, type, issuer, audience and validity window of a token."""

    def __init__(
        self,
        *,
        keys: KeyResolver,
        issuer: str,
        audience: str,
        algorithms: Sequence[str] = DEFAULT_ALGORITHMS,
        leeway: float = 30.0,
        clock: Callable[[], float] = time.time,
        cache_size: int = 0,
    ) -> None:
        """Args:
        keys: finds the public key for a `kid`.
        issuer, audience: the exact `iss` and an `aud` the token must carry.
        algorithms: the allow-list; the token's `alg` must be on it.
        leeway: seconds of clock skew tolerated on `exp`, `nbf` and `iat`.
        clock: returns "now" as a Unix timestamp.
        cache_size: how many verified tokens to remember. A remembered token skips the
            signature check (the costly part) but still has its key and validity window
            checked on every call. 0 turns the cache off.
        """
        if not algorithms or any(alg.lower() == "none" for alg in algorithms):
            raise ValueError("algorithms must be a non-empty allow-list without 'none'")
        self._keys = keys
        self._issuer = issuer
        self._audience = audience
        self._algorithms = list(algorithms)
        self._leeway = leeway
        self._clock = clock
        self._cache_size = cache_size
        self._cache: dict[str, AccessTokenClaims] = {}

    def verify(self, token: str) -> AccessTokenClaims:
        """Verify `token` and return its claims.

        Raises:
            InvalidTokenError: any reason the token must be refused (see `errors`).
        """
        cached = self._cache.get(token)
        if cached is not None and self._keys.public_key(cached.key_id) is not None:
            self._check_time(cached.raw)
            return cached
        claims = self._verify_uncached(token)
        if self._cache_size:
            if len(self._cache) >= self._cache_size:
                self._cache.clear()
            self._cache[token] = claims
        return claims

    def _verify_uncached(self, token: str) -> AccessTokenClaims:
        # Step 1: parse the header and pick the key by `kid`; never trust `alg` to choose it.
        header, kid = _unverified_header(token)
        if header.get("alg") not in self._algorithms:
            raise InvalidSignatureError("token algorithm is not allowed")
        # RFC 9068 s4: the resource server must check the media type of the token.
        typ = header.get("typ")
        if not isinstance(typ, str) or typ.lower() not in (
            ACCESS_TOKEN_TYPE,
            "application/" + ACCESS_TOKEN_TYPE,
        ):
            raise InvalidClaimsError("token is not an access token")
        key = self._keys.public_key(kid)
        if key is None:
            raise UnknownKeyError("token was signed by an unknown key")

        # Step 2: the signature, under the explicit algorithm allow-list.
        try:
            payload = jwt.decode(
                token,
                key,
                algorithms=self._algorithms,
                audience=self._audience,
                issuer=self._issuer,
                options={
                    "require": list(_REQUIRED_CLAIMS),
                    # Time is checked below against the injected clock.
                    "verify_exp": False,
                    "verify_nbf": False,
                    "verify_iat": False,
                },
            )
        except jwt.InvalidSignatureError as exc:
            raise InvalidSignatureError("token signature does not verify") from exc
        except jwt.InvalidAlgorithmError as exc:
            raise InvalidSignatureError("token algorithm is not allowed") from exc
        except (jwt.DecodeError, jwt.InvalidKeyError) as exc:
            raise MalformedTokenError("token is not a well-formed JWT") from exc
        except jwt.PyJWTError as exc:
            raise InvalidClaimsError("token claims are invalid") from exc

        # Step 3: the validity window, with a small leeway for clock skew.
        return self._check_claims(payload, kid)

    def _check_time(self, payload: dict[str, Any]) -> None:
        now = self._clock()
        exp, iat, nbf = payload.get("exp"), payload.get("iat"), payload.get("nbf", 0)
        if not (_is_number(exp) and _is_number(iat) and _is_number(nbf)):
            raise InvalidClaimsError("token time claims are not numbers")
        if now >= exp + self._leeway:
            raise ExpiredTokenError("token has expired")
        if iat > now + self._leeway or nbf > now + self._leeway:
            raise ExpiredTokenError("token is not valid yet")

    def _check_claims(self, payload: dict[str, Any], kid: str) -> AccessTokenClaims:
        self._check_time(payload)

        sub, jti, sid = payload.get("sub"), payload.get("jti"), payload.get("sid")
        roles = payload.get("roles", [])
        if not isinstance(sub, str) or not isinstance(jti, str):
            raise InvalidClaimsError("token subject or id is not a string")
        if sid is not None and not isinstance(sid, str):
            raise InvalidClaimsError("token session id is not a string")
        if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
            raise InvalidClaimsError("token roles are not a list of strings")
        kind = payload.get("kind", USER_KIND)
        if kind not in (USER_KIND, DEVICE_KIND):
            raise InvalidClaimsError("token kind is not user or device")
        aud = payload["aud"]
        audience = (aud,) if isinstance(aud, str) else tuple(aud)
        return AccessTokenClaims(
            subject=sub,
            issuer=payload["iss"],
            audience=audience,
            expires_at=int(payload["exp"]),
            issued_at=int(payload["iat"]),
            token_id=jti,
            session_id=sid,
            roles=frozenset(roles),
            key_id=kid,
            raw=payload,
            kind=kind,
        )


def _is_number(value: object) -> TypeGuard[float]:
    return isinstance(value, int | float) and not isinstance(value, bool)
