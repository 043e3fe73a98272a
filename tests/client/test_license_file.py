"""Offline license files: only an EdDSA license file from a JWKS key, for this machine, passes.

The tests sign their own files with a fresh Ed25519 key; `Signer` and `license_claims` are
also used by test_check_license.py.
"""

from __future__ import annotations

import base64
import json
import string
import time
from typing import Any

import jwt
import pytest

from gatehouse.client import (
    LicenseClaims,
    LicenseError,
    LicenseExpired,
    LicenseInvalid,
    LicenseMismatch,
    verify_license_file,
)
from tests.client.helpers import (
    DEVICE_ID,
    FINGERPRINT,
    LICENSE_ID,
    NOW,
    OTHER_FINGERPRINT,
    Signer,
    license_claims,
)


@pytest.fixture
def signer() -> Signer:
    return Signer()


def verify(token: object, jwks: object, fingerprint: str = FINGERPRINT) -> LicenseClaims:
    return verify_license_file(token, jwks=jwks, fingerprint=fingerprint, now=NOW)  # type: ignore[arg-type]


def b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def test_a_valid_license_file_gives_its_claims(signer: Signer) -> None:
    """A file signed by a JWKS key for this fingerprint yields every claim, typed."""
    claims = verify(signer.sign(license_claims()), signer.jwks())
    assert claims == LicenseClaims(
        fingerprint=FINGERPRINT,
        device_id=DEVICE_ID,
        license_id=LICENSE_ID,
        product="pro",
        features=("export", "sync"),
        issued_at=NOW - 60,
        expires_at=NOW + 7 * 86400,
        issuer="https://auth.example.com",
        raw=license_claims(),
    )


def test_a_device_without_a_license_has_null_license_and_product(signer: Signer) -> None:
    """`license_id` and `product` may be null (a device registered without a license)."""
    token = signer.sign(license_claims(license_id=None, product=None, features=[]))
    claims = verify(token, signer.jwks())
    assert (claims.license_id, claims.product, claims.features) == (None, None, ())


def test_the_system_clock_is_used_without_now(signer: Signer) -> None:
    """Without `now`, a file valid for the next week verifies against the real clock."""
    now = int(time.time())
    token = signer.sign(license_claims(iat=now, exp=now + 7 * 86400))
    assert verify_license_file(token, jwks=signer.jwks(), fingerprint=FINGERPRINT).issued_at == now


def test_every_single_character_edit_is_refused(signer: Signer) -> None:
    """Each one-character edit anywhere in a license file makes it LicenseInvalid.

    Header and payload are signed as text, so an edit there breaks the signature. In the
    signature, the last of its 86 characters carries 4 unused bits that lenient decoders
    ignore (PyJWT before 2.15 among them): such an edit would keep the signature bytes
    and verify. The verifier takes only the canonical spelling, so these fail too.
    """
    jwks = signer.jwks()
    token = signer.sign(license_claims())
    verify(token, jwks)
    alphabet = string.ascii_letters + string.digits + "-_"
    last = len(token) - 1
    padding_bit_edits = {alphabet[alphabet.index(token[last]) + bit] for bit in (1, 2, 4, 8)}
    for position, char in enumerate(token):
        neighbour = alphabet[(alphabet.find(char) + 1) % 64]
        substitutes = {neighbour, "+", "/", ".", "!", "=", "\u00e9"}
        if position == last:
            substitutes |= padding_bit_edits
        for substitute in substitutes - {char}:
            edited = token[:position] + substitute + token[position + 1 :]
            with pytest.raises(LicenseInvalid):
                verify(edited, jwks)


def test_a_signature_differing_only_in_unused_bits_decodes_to_the_same_bytes(
    signer: Signer,
) -> None:
    """The padding-bit edits refused above are real aliases: they decode to the same bytes."""
    token = signer.sign(license_claims())
    signature = token.rsplit(".", 1)[1]
    alphabet = string.ascii_letters + string.digits + "-_"
    alias = signature[:-1] + alphabet[alphabet.index(signature[-1]) + 1]
    assert base64.urlsafe_b64decode(alias + "==") == base64.urlsafe_b64decode(signature + "==")


@pytest.mark.parametrize(
    ("signature", "reason"),
    [("", "well-formed"), ("c2lnbmF0dXJl", "EdDSA")],
    ids=["unsigned", "junk-signature"],
)
def test_an_alg_none_file_is_refused(signer: Signer, signature: str, reason: str) -> None:
    """`alg: none` is LicenseInvalid: unsigned for its empty segment, else for its alg."""
    header = {"alg": "none", "typ": "gatehouse-license+jwt", "kid": signer.kid}
    token = f"{b64(header)}.{b64(license_claims())}.{signature}"
    with pytest.raises(LicenseInvalid, match=reason):
        verify(token, signer.jwks())


@pytest.mark.parametrize("secret_of", ["raw", "x"])
def test_an_hs256_file_keyed_by_the_public_key_is_refused(signer: Signer, secret_of: str) -> None:
    """Algorithm confusion: HS256 with the public key (raw bytes or its `x`) as secret fails."""
    raw = signer.key.public_key().public_bytes_raw()
    secret = raw if secret_of == "raw" else signer.jwk()["x"].encode()
    headers = {"kid": signer.kid, "typ": "gatehouse-license+jwt"}
    token = jwt.encode(license_claims(), secret, algorithm="HS256", headers=headers)
    with pytest.raises(LicenseInvalid, match="EdDSA"):
        verify(token, signer.jwks())


def test_a_file_from_a_key_outside_the_jwks_is_refused(signer: Signer) -> None:
    """Another Ed25519 key whose kid is not in the JWKS: LicenseInvalid (unknown key)."""
    stranger = Signer(kid="key-9")
    with pytest.raises(LicenseInvalid, match="unknown key"):
        verify(stranger.sign(license_claims()), signer.jwks())


def test_a_file_from_another_key_under_a_known_kid_is_refused(signer: Signer) -> None:
    """Another Ed25519 key claiming the JWKS key's kid: the signature does not verify."""
    impostor = Signer(kid=signer.kid)
    with pytest.raises(LicenseInvalid, match="signature"):
        verify(impostor.sign(license_claims()), signer.jwks())


@pytest.mark.parametrize("typ", ["at+jwt", "JWT", "application/gatehouse-license+jwt", None])
def test_a_token_of_another_type_is_refused(signer: Signer, typ: str | None) -> None:
    """An access token (`at+jwt`), a plain JWT or no `typ` at all is not a license file."""
    token = signer.sign(license_claims(), typ=typ)
    with pytest.raises(LicenseInvalid, match="not a license file"):
        verify(token, signer.jwks())


def test_a_file_without_kid_is_refused(signer: Signer) -> None:
    """A header without `kid` names no key: LicenseInvalid."""
    token = signer.sign(license_claims(), kid=None)
    with pytest.raises(LicenseInvalid, match="names no key"):
        verify(token, signer.jwks())


def test_a_file_for_another_machine_is_a_mismatch(signer: Signer) -> None:
    """A valid file for another fingerprint raises LicenseMismatch."""
    token = signer.sign(license_claims(OTHER_FINGERPRINT))
    with pytest.raises(LicenseMismatch):
        verify(token, signer.jwks())


@pytest.mark.parametrize("exp", [NOW - 1, NOW], ids=["past", "now"])
def test_a_file_past_its_grace_is_expired(signer: Signer, exp: int) -> None:
    """A valid file whose `exp` is now or earlier raises LicenseExpired."""
    with pytest.raises(LicenseExpired):
        verify(signer.sign(license_claims(exp=exp)), signer.jwks())


def test_a_file_valid_one_second_more_still_passes(signer: Signer) -> None:
    """A file expiring one second after `now` still verifies (no leeway needed)."""
    assert verify(signer.sign(license_claims(exp=NOW + 1)), signer.jwks()).expires_at == NOW + 1


def test_an_oversized_file_is_refused_before_its_signature(signer: Signer) -> None:
    """A correctly signed file longer than 8 KiB is LicenseInvalid for its size."""
    token = signer.sign(license_claims(features=[f"feature-{i}" for i in range(1000)]))
    assert len(token) > 8 * 1024
    with pytest.raises(LicenseInvalid, match="8 KiB"):
        verify(token, signer.jwks())


@pytest.mark.parametrize("token", [None, b"a.b.c", 42, "", "abc", "a.b", "a.b.c.d"])
def test_a_token_that_is_no_compact_jws_is_refused(signer: Signer, token: object) -> None:
    """Non-strings and strings that are not three segments are LicenseInvalid."""
    with pytest.raises(LicenseInvalid):
        verify(token, signer.jwks())


@pytest.mark.parametrize(
    "jwks",
    [
        None,
        [],
        "keys",
        {},
        {"keys": "abc"},
        {"keys": [1, "a", None, []]},
        {"keys": [{"kid": "key-1", "kty": "OKP", "crv": "Ed25519", "x": "!!"}]},
        {"keys": [{"kid": "key-1", "kty": "OKP", "crv": "Ed25519", "x": 7}]},
        {"keys": [{"kid": "key-1", "kty": "OKP", "crv": "Ed25519"}]},
    ],
    ids=["none", "list", "str", "empty", "keys-str", "junk-entries", "bad-x", "int-x", "no-x"],
)
def test_a_malformed_jwks_is_refused(signer: Signer, jwks: object) -> None:
    """A key set that is not a JWKS, or whose key is malformed, is LicenseInvalid."""
    with pytest.raises(LicenseInvalid):
        verify(signer.sign(license_claims()), jwks)


def test_keys_of_other_types_are_skipped(signer: Signer) -> None:
    """RSA, EC and X25519 entries beside the Ed25519 key do not disturb verification."""
    others = [
        {"kty": "RSA", "kid": "rsa-1", "n": "AQAB", "e": "AQAB"},
        {"kty": "EC", "kid": "ec-1", "crv": "P-256", "x": "AA", "y": "AA"},
        {"kty": "OKP", "kid": "x-1", "crv": "X25519", "x": "AA"},
    ]
    jwks = {"keys": [*others, signer.jwk()]}
    assert verify(signer.sign(license_claims()), jwks).device_id == DEVICE_ID


@pytest.mark.parametrize(
    "entry",
    [
        {"kty": "OKP", "crv": "X25519"},
        {"kty": "EC", "crv": "P-256"},
        {"alg": "ES256"},
        {"use": "enc"},
    ],
    ids=["x25519", "ec", "alg", "use"],
)
def test_a_non_signing_key_under_the_kid_is_no_key(signer: Signer, entry: dict[str, Any]) -> None:
    """An entry with the file's kid that is not an EdDSA signing key is skipped."""
    jwks = {"keys": [{**signer.jwk(), **entry}]}
    with pytest.raises(LicenseInvalid, match="unknown key"):
        verify(signer.sign(license_claims()), jwks)


@pytest.mark.parametrize(
    "claim", ["iss", "sub", "fingerprint", "device_id", "features", "iat", "exp"]
)
def test_a_file_missing_a_required_claim_is_refused(signer: Signer, claim: str) -> None:
    """Each required claim, left out of a signed file, makes it LicenseInvalid."""
    claims = license_claims()
    del claims[claim]
    with pytest.raises(LicenseInvalid):
        verify(signer.sign(claims), signer.jwks())


@pytest.mark.parametrize(
    "overrides",
    [
        {"features": "export"},
        {"features": ["export", 1]},
        {"iat": "1"},
        {"exp": float(NOW + 100)},
        {"exp": True},
        {"fingerprint": FINGERPRINT.upper()},
        {"fingerprint": "5f" * 31},
        {"sub": "someone-else"},
        {"device_id": 7},
        {"license_id": 5},
        {"product": ["pro"]},
        {"iss": None},
    ],
)
def test_a_file_with_an_ill_typed_claim_is_refused(
    signer: Signer, overrides: dict[str, Any]
) -> None:
    """Signed claims of the wrong type or form are LicenseInvalid, not trusted."""
    with pytest.raises(LicenseInvalid):
        verify(signer.sign(license_claims(**overrides)), signer.jwks())


def test_refusals_never_echo_the_token(signer: Signer) -> None:
    """The messages of invalid, expired and mismatched files hold no part of the token."""
    tokens = [
        signer.sign(license_claims(), typ="at+jwt"),
        signer.sign(license_claims(exp=NOW - 1)),
        signer.sign(license_claims(OTHER_FINGERPRINT)),
    ]
    for token in tokens:
        with pytest.raises(LicenseError) as caught:
            verify(token, signer.jwks())
        message = str(caught.value)
        assert all(part not in message for part in token.split("."))
