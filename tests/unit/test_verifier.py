"""gatehouse.verifier on its own: what it accepts and what it refuses."""

from __future__ import annotations

from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gatehouse.verifier import (
    AccessTokenVerifier,
    ExpiredTokenError,
    InvalidClaimsError,
    InvalidSignatureError,
    InvalidTokenError,
    MalformedTokenError,
    StaticKeys,
    UnknownKeyError,
)

NOW = 1_800_000_000.0
KEY = Ed25519PrivateKey.generate()


def _verifier(**overrides: Any) -> AccessTokenVerifier:
    options: dict[str, Any] = {
        "keys": StaticKeys({"k1": KEY.public_key()}),
        "issuer": "https://issuer.test",
        "audience": "api",
        "leeway": 30,
        "clock": lambda: NOW,
    }
    options.update(overrides)
    return AccessTokenVerifier(**options)


def _token(claims: dict[str, Any] | None = None, header: dict[str, Any] | None = None) -> str:
    base = {
        "iss": "https://issuer.test",
        "sub": "user-1",
        "aud": "api",
        "exp": NOW + 600,
        "iat": NOW,
        "jti": "j1",
        "sid": "s1",
        "roles": ["user"],
    }
    base.update(claims or {})
    return jwt.encode(
        base, KEY, algorithm="EdDSA", headers={"kid": "k1", "typ": "at+jwt", **(header or {})}
    )


def test_a_valid_token_yields_its_claims() -> None:
    """A well-formed token returns subject, session, roles and key id."""
    claims = _verifier().verify(_token())
    assert claims.subject == "user-1"
    assert claims.session_id == "s1"
    assert claims.roles == frozenset({"user"})
    assert claims.key_id == "k1"
    assert claims.audience == ("api",)


def test_expiry_honours_the_leeway() -> None:
    """A token expired by less than the leeway passes; by more, it fails."""
    assert _verifier().verify(_token({"exp": NOW - 29}))
    with pytest.raises(ExpiredTokenError):
        _verifier().verify(_token({"exp": NOW - 31}))


def test_tokens_from_the_future_are_refused() -> None:
    """iat or nbf beyond the leeway means not valid yet."""
    with pytest.raises(ExpiredTokenError):
        _verifier().verify(_token({"iat": NOW + 120}))
    with pytest.raises(ExpiredTokenError):
        _verifier().verify(_token({"nbf": NOW + 120}))


@pytest.mark.parametrize("claim", ["iss", "sub", "aud", "exp", "iat", "jti"])
def test_each_required_claim_must_be_present(claim: str) -> None:
    """Dropping any RFC 9068 required claim fails with InvalidClaimsError."""
    token_claims = jwt.decode(_token(), options={"verify_signature": False})
    del token_claims[claim]
    token = jwt.encode(token_claims, KEY, algorithm="EdDSA", headers={"kid": "k1", "typ": "at+jwt"})
    with pytest.raises(InvalidClaimsError):
        _verifier().verify(token)


@pytest.mark.parametrize(
    ("claims", "header", "error"),
    [
        ({"iss": "https://other.test"}, None, InvalidClaimsError),
        ({"aud": "other"}, None, InvalidClaimsError),
        ({"roles": "admin"}, None, InvalidClaimsError),
        ({"exp": "soon"}, None, InvalidClaimsError),
        ({"exp": True}, None, InvalidClaimsError),
        (None, {"typ": "JWT"}, InvalidClaimsError),
        (None, {"kid": "other"}, UnknownKeyError),
    ],
)
def test_wrong_claims_or_headers_are_refused(
    claims: dict[str, Any] | None, header: dict[str, Any] | None, error: type[Exception]
) -> None:
    """Each wrong value raises its specific error."""
    with pytest.raises(error):
        _verifier().verify(_token(claims, header))


def test_a_token_signed_by_another_key_is_refused() -> None:
    """Same kid, foreign key: InvalidSignatureError."""
    forged = jwt.encode(
        {"sub": "x"},
        Ed25519PrivateKey.generate(),
        algorithm="EdDSA",
        headers={"kid": "k1", "typ": "at+jwt"},
    )
    with pytest.raises(InvalidSignatureError):
        _verifier().verify(forged)


def test_algorithms_off_the_allow_list_are_refused() -> None:
    """An HS256 token is refused before any key is tried."""
    forged = jwt.encode(
        {"sub": "x"}, "secret" * 8, algorithm="HS256", headers={"kid": "k1", "typ": "at+jwt"}
    )
    with pytest.raises(InvalidSignatureError):
        _verifier().verify(forged)


@pytest.mark.parametrize("token", ["", "abc", "a.b.c", "..", "e30.e30.", "\x00"])
def test_malformed_tokens_raise_the_catchable_root(token: str) -> None:
    """Garbage raises a subclass of InvalidTokenError, never anything else."""
    with pytest.raises(InvalidTokenError):
        _verifier().verify(token)
    with pytest.raises(InvalidTokenError):
        _verifier().verify(token)


def test_none_cannot_be_allowed() -> None:
    """Constructing a verifier that allows 'none' is refused."""
    with pytest.raises(ValueError, match="none"):
        _verifier(algorithms=["none"])


def test_malformed_error_is_distinct() -> None:
    """A token with no kid is malformed."""
    no_kid = jwt.encode({"sub": "x"}, KEY, algorithm="EdDSA", headers={"typ": "at+jwt"})
    with pytest.raises(MalformedTokenError):
        _verifier().verify(no_kid)


def test_a_remembered_token_still_expires() -> None:
    """The verified-token cache skips the signature, never the validity window."""
    now = [NOW]
    verifier = _verifier(cache_size=10, clock=lambda: now[0])
    token = _token()
    verifier.verify(token)
    now[0] = NOW + 700
    with pytest.raises(ExpiredTokenError):
        verifier.verify(token)


def test_a_remembered_token_fails_once_its_key_is_gone() -> None:
    """Removing a key from the resolver stops tokens it signed, cached or not."""
    keys = {"k1": KEY.public_key()}
    verifier = _verifier(cache_size=10, keys=StaticKeys(keys))
    token = _token()
    verifier.verify(token)
    keys.clear()
    with pytest.raises(UnknownKeyError):
        verifier.verify(token)
