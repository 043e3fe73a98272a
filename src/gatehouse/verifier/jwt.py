"""Access-token verification: the one definition of a valid Gatehouse access token.

Resource servers and the Gatehouse server itself use this module, so a token that one
accepts the other accepts too. It depends on PyJWT and `cryptography` only. Time checks use
an injected clock rather than PyJWT's, so tests and callers control "now".
"""

from __future__ import annotations

import base64
import binascii
import json
import re
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
#: Tokens longer than this are refused before any decoding (a Gatehouse token is ~600 bytes).
MAX_TOKEN_BYTES = 8192
# RFC 7515 s7.1: three base64url segments without padding; the signature may be empty
# (so that `alg: none` is refused as an algorithm, by name, below).
_COMPACT_JWS = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")
# Headers that carry a key or where to fetch one (RFC 7515 s4.1.2-4.1.6). The key comes
# from our resolver only, so a token that offers its own is forged or confused: refused.
_KEY_HEADERS = frozenset({"jwk", "jku", "x5u", "x5c"})


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
    #: The `scope` claim (RFC 8693 s4.2), space-separated in the token; client-credentials
    #: tokens carry one, session tokens none (their authority is `roles`).
    scopes: frozenset[str] = frozenset()
    #: The API key's client id (`ghk_...`) for a client-credentials token, else None.
    client_id: str | None = None

    @property
    def is_device(self) -> bool:
        return self.kind == DEVICE_KIND


def _segment(segment: str) -> bytes:
    """One base64url segment, decoded; only its canonical (unpadded) encoding is accepted,
    so no two token strings carry the same bytes."""
    try:
        decoded = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    except (binascii.Error, ValueError) as exc:
        raise MalformedTokenError("token segment is not base64url") from exc
    if base64.urlsafe_b64encode(decoded).rstrip(b"=") != segment.encode():
        raise MalformedTokenError("token segment is not canonical base64url")
    return decoded


def _json_object(segment: str, what: str) -> dict[str, Any]:
    try:
        value = json.loads(_segment(segment))
    except (ValueError, RecursionError) as exc:
        raise MalformedTokenError(f"token {what} is not JSON") from exc
    if not isinstance(value, dict):
        raise MalformedTokenError(f"token {what} is not a JSON object")
    return value


def _unverified_header(token: str) -> tuple[dict[str, Any], str]:
    # Size first: nothing of an oversized token is decoded (no base64 or JSON of 1 MB).
    if len(token) > MAX_TOKEN_BYTES:
        raise MalformedTokenError("token is not a string of at most 8 KiB")
    # One C-speed match checks the shape and the alphabet of all three segments, so the
    # segments below are ASCII; PyJWT's own parser does this per character, in Python.
    if _COMPACT_JWS.fullmatch(token) is None:
        raise MalformedTokenError("token is not a compact JWS of unpadded base64url segments")
    header = _json_object(token[: token.index(".")], "header")
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
        try:
            self._algorithm_objects = {alg: jwt.get_algorithm_by_name(alg) for alg in algorithms}
        except NotImplementedError as exc:
            raise ValueError(f"unsupported algorithm in the allow-list: {exc}") from exc
        self._leeway = leeway
        self._clock = clock
        self._cache_size = cache_size
        self._cache: dict[str, AccessTokenClaims] = {}

    def verify(self, token: str) -> AccessTokenClaims:
        """Verify `token` and return its claims.

        Raises:
            InvalidTokenError: any reason the token must be refused (see `errors`).
        """
        if len(token) > MAX_TOKEN_BYTES:
            raise MalformedTokenError("token is not a string of at most 8 KiB")
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
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in self._algorithm_objects:
            raise InvalidSignatureError("token algorithm is not allowed")
        # RFC 9068 s4: the resource server must check the media type of the token.
        typ = header.get("typ")
        if not isinstance(typ, str) or typ.lower() not in (
            ACCESS_TOKEN_TYPE,
            "application/" + ACCESS_TOKEN_TYPE,
        ):
            raise InvalidClaimsError("token is not an access token")
        if not _KEY_HEADERS.isdisjoint(header):
            raise InvalidClaimsError("token header offers its own key or key URL")
        # RFC 7515 s4.1.11: extensions listed in `crit` must be understood; we know none.
        # RFC 7797's unencoded payload (`b64: false`) is such an extension.
        if "crit" in header or "b64" in header:
            raise MalformedTokenError("token header lists critical extensions")
        key = self._keys.public_key(kid)
        if key is None:
            raise UnknownKeyError("token was signed by an unknown key")

        # Step 2: the signature, by the allow-listed algorithm's PyJWT implementation.
        signing_input, _, signature = token.rpartition(".")
        algorithm = self._algorithm_objects[alg]
        try:
            valid = algorithm.verify(
                signing_input.encode(), algorithm.prepare_key(key), _segment(signature)
            )
        except (jwt.InvalidKeyError, TypeError, ValueError) as exc:
            raise InvalidSignatureError("token key does not fit its algorithm") from exc
        if not valid:
            raise InvalidSignatureError("token signature does not verify")

        # Step 3: the claims: a JSON object, the exact issuer, our audience, the rest present.
        payload = _json_object(signing_input[signing_input.index(".") + 1 :], "payload")
        missing = [claim for claim in _REQUIRED_CLAIMS if claim not in payload]
        if missing:
            raise InvalidClaimsError(f"token lacks required claims: {', '.join(missing)}")
        # Equality, never `in`: "https://auth.example.co" is not a part of our issuer.
        if payload["iss"] != self._issuer or not isinstance(payload["iss"], str):
            raise InvalidClaimsError("token issuer is not ours")
        aud = payload["aud"]
        audiences = [aud] if isinstance(aud, str) else aud
        if (
            not isinstance(audiences, list)
            or not all(isinstance(a, str) for a in audiences)
            or self._audience not in audiences
        ):
            raise InvalidClaimsError("token audience is not ours")

        # Step 4: the validity window, with a small leeway for clock skew.
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
        scope, client_id = payload.get("scope", ""), payload.get("client_id")
        if not isinstance(scope, str):
            raise InvalidClaimsError("token scope is not a string")
        if client_id is not None and not isinstance(client_id, str):
            raise InvalidClaimsError("token client id is not a string")
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
            scopes=frozenset(scope.split()),
            client_id=client_id,
        )


def _is_number(value: object) -> TypeGuard[float]:
    return isinstance(value, int | float) and not isinstance(value, bool)
