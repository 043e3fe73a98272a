"""Offline license files: the one definition of a license file this machine may run on.

A license file is a compact JWS the server signs with an Ed25519 key of its JWKS, with
header `typ: gatehouse-license+jwt`, binding a device's fingerprint to its license and an
offline grace (`exp`). Verification needs no network: the caller hands in the JWKS it holds.
PyJWT and `cryptography` only; no HTTP here.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import re
import time
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from gatehouse.client.errors import (
    LicenseError,
    LicenseExpired,
    LicenseInvalid,
    LicenseMismatch,
)

#: The `typ` header of a license file; an access token (`at+jwt`) must not pass for one.
LICENSE_TYPE = "gatehouse-license+jwt"
#: A license file is a few hundred bytes; anything far larger is not one.
MAX_LICENSE_SIZE = 8 * 1024
_ALGORITHM = "EdDSA"
_HEX64 = re.compile(r"[0-9a-f]{64}")
_BASE64URL = re.compile(r"[A-Za-z0-9_-]+")
_REQUIRED = ("iss", "sub", "fingerprint", "device_id", "features", "iat", "exp")


@dataclass(frozen=True, slots=True)
class LicenseClaims:
    """The checked claims of a license file."""

    fingerprint: str
    device_id: str
    license_id: str | None
    product: str | None
    features: tuple[str, ...]
    issued_at: int
    expires_at: int
    issuer: str
    raw: dict[str, Any]


def _is_canonical(token: str) -> bool:
    """Three segments, each the one base64url spelling (RFC 7515 s2) of its bytes.

    Decoders ignore the unused low bits of a segment's last character, so without this
    several strings would verify as one file; with it, a license file has one spelling.
    """
    segments = token.split(".")
    if len(segments) != 3:
        return False
    for segment in segments:
        if not _BASE64URL.fullmatch(segment) or len(segment) % 4 == 1:
            return False
        try:
            data = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
        except binascii.Error:
            return False
        if base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii") != segment:
            return False
    return True


def _public_key(jwks: object, kid: str) -> Ed25519PublicKey:
    if not isinstance(jwks, dict) or not isinstance(jwks.get("keys"), list):
        raise LicenseInvalid("the key set is not a JWKS")
    for entry in jwks["keys"]:
        # Only Ed25519 signing keys can sign a license; other entries are skipped.
        if not isinstance(entry, dict) or entry.get("kid") != kid:
            continue
        if entry.get("kty") != "OKP" or entry.get("crv") != "Ed25519":
            continue
        if entry.get("alg", _ALGORITHM) != _ALGORITHM or entry.get("use", "sig") != "sig":
            continue
        try:
            key = jwt.PyJWK(entry, algorithm=_ALGORITHM).key
        except jwt.PyJWTError as exc:
            raise LicenseInvalid("the key set holds a malformed key") from exc
        # A private JWK (with `d`) loads as a private key; only a public key is expected.
        if isinstance(key, Ed25519PublicKey):
            return key
    raise LicenseInvalid("the license file was signed by an unknown key")


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _optional_str(payload: dict[str, Any], name: str) -> str | None:
    value = payload.get(name)
    if value is not None and not isinstance(value, str):
        raise LicenseInvalid(f"the license file's {name} is not a string")
    return value


def _claims(payload: dict[str, Any]) -> LicenseClaims:
    iss, sub, device_id = payload["iss"], payload["sub"], payload["device_id"]
    fingerprint, features = payload["fingerprint"], payload["features"]
    if not all(isinstance(value, str) for value in (iss, sub, device_id)):
        raise LicenseInvalid("the license file's issuer, subject or device is not a string")
    if sub != device_id:
        raise LicenseInvalid("the license file's subject is not its device")
    if not isinstance(fingerprint, str) or not _HEX64.fullmatch(fingerprint):
        raise LicenseInvalid("the license file's fingerprint is not 64 hex digits")
    if not isinstance(features, list) or not all(isinstance(f, str) for f in features):
        raise LicenseInvalid("the license file's features are not a list of strings")
    if not (_is_int(payload["iat"]) and _is_int(payload["exp"])):
        raise LicenseInvalid("the license file's times are not integers")
    return LicenseClaims(
        fingerprint=fingerprint,
        device_id=device_id,
        license_id=_optional_str(payload, "license_id"),
        product=_optional_str(payload, "product"),
        features=tuple(features),
        issued_at=payload["iat"],
        expires_at=payload["exp"],
        issuer=iss,
        raw=payload,
    )


def _verify(token: object, jwks: object, fingerprint: str, now: float) -> LicenseClaims:
    # Step 1: the shape and header. `alg` is fixed, never taken from the token to pick a
    # key (RFC 8725 s3.1); `typ` keeps other Gatehouse JWTs from passing (RFC 8725 s3.11).
    if not isinstance(token, str) or len(token) > MAX_LICENSE_SIZE:
        raise LicenseInvalid("the license file is not a compact JWS of at most 8 KiB")
    if not _is_canonical(token):
        raise LicenseInvalid("the license file is not a well-formed JWS")
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError as exc:
        raise LicenseInvalid("the license file is not a well-formed JWS") from exc
    if header.get("alg") != _ALGORITHM:
        raise LicenseInvalid("the license file is not signed with EdDSA")
    if header.get("typ") != LICENSE_TYPE:
        raise LicenseInvalid("the token is not a license file")
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid:
        raise LicenseInvalid("the license file names no key")
    key = _public_key(jwks, kid)

    # Step 2: the signature, under an allow-list of one algorithm.
    try:
        payload = jwt.decode(
            token,
            key,
            algorithms=[_ALGORITHM],
            options={
                "require": list(_REQUIRED),
                # Time is checked below against the caller's `now`; the issuer is not known
                # offline, and a license file has no audience.
                "verify_exp": False,
                "verify_iat": False,
                "verify_nbf": False,
                "verify_iss": False,
                "verify_aud": False,
            },
        )
    except jwt.InvalidSignatureError as exc:
        raise LicenseInvalid("the license file's signature does not verify") from exc
    except jwt.PyJWTError as exc:
        raise LicenseInvalid("the license file is malformed or lacks a claim") from exc

    # Step 3: the claims, the offline grace, then this machine.
    claims = _claims(payload)
    if now >= claims.expires_at:
        raise LicenseExpired("the license file's offline grace period has ended")
    if not hmac.compare_digest(claims.fingerprint.encode(), fingerprint.encode()):
        raise LicenseMismatch("the license file was issued to another machine")
    return claims


def verify_license_file(
    token: str, *, jwks: dict[str, Any], fingerprint: str, now: float | None = None
) -> LicenseClaims:
    """Verify a license file offline and return its claims.

    Args:
        token: the license file (compact JWS) as the server issued it.
        jwks: the server's key set, as `GET /.well-known/jwks.json` returns it.
        fingerprint: this machine's fingerprint (`collect(app_id).fingerprint`).
        now: the current Unix time; the system clock when None.

    Raises:
        LicenseInvalid: malformed, wrong algorithm or type, unknown key, bad signature,
            missing or ill-typed claim, or a malformed `jwks`.
        LicenseExpired: the file verified but `exp` has passed.
        LicenseMismatch: the file verified but names another fingerprint.
    """
    try:
        return _verify(token, jwks, fingerprint, time.time() if now is None else now)
    except LicenseError:
        raise
    except Exception as exc:
        # A safety net: whatever else breaks on hostile input refuses the file, never
        # escapes as an error the caller did not plan for.
        raise LicenseInvalid("the license file could not be verified") from exc
