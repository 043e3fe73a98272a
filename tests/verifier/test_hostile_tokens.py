"""The hostile-token table: one row per attack, each refused with its precise error.

The verifier gets its JWKS from an `httpx.MockTransport` that records every request, so each
row also proves that nothing the token names (`jku`, `x5u`, ...) is ever fetched.
"""

from __future__ import annotations

import base64
import json
import logging

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gatehouse.verifier import (
    ExpiredTokenError,
    InvalidClaimsError,
    InvalidSignatureError,
    InvalidTokenError,
    MalformedTokenError,
    TokenVerifier,
    UnknownKeyError,
)
from gatehouse.verifier.documents import MAX_DOCUMENT_BYTES
from tests.verifier import forge
from tests.verifier.forge import AUDIENCE, ISSUER, KEY, NOW, claims, eddsa, header

JWKS_URL = "https://keys.example.net/jwks.json"
ATTACKER = Ed25519PrivateKey.generate()
PUBLIC = KEY.public_key()
RAW_PUBLIC = PUBLIC.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
PEM_PUBLIC = PUBLIC.public_bytes(
    serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
)
JWK_PUBLIC = json.dumps(forge.public_jwk()).encode()
VALID = eddsa()


def _oversized() -> str:
    token = eddsa(body=claims(padding="x" * 8200))
    assert len(token) > 8192
    return token


def _non_canonical(token: str) -> str:
    """The same signature bytes, spelled with different unused trailing bits."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    last = alphabet[alphabet.index(token[-1]) ^ 1]
    return token[:-1] + last


def _padded(token: str) -> str:
    head, body, signature = token.split(".")
    return f"{head}=.{body}.{signature}"


HOSTILE: list[tuple[str, str, type[InvalidTokenError]]] = [
    # alg: none, in any case, with or without a signature.
    ("alg none", forge.unsigned("none"), InvalidSignatureError),
    ("alg None", forge.unsigned("None"), InvalidSignatureError),
    ("alg NONE", forge.unsigned("NONE"), InvalidSignatureError),
    ("alg nOnE", forge.unsigned("nOnE"), InvalidSignatureError),
    ("alg none with a signature", forge.unsigned("none") + "c2ln", InvalidSignatureError),
    # HS256 keyed with the public key, in every encoding an attacker might guess.
    ("HS256 with raw public key", forge.hs256(RAW_PUBLIC), InvalidSignatureError),
    ("HS256 with PEM public key", forge.hs256(PEM_PUBLIC), InvalidSignatureError),
    ("HS256 with JWK JSON", forge.hs256(JWK_PUBLIC), InvalidSignatureError),
    (
        "HS256 with base64url public key",
        forge.hs256(forge.b64(RAW_PUBLIC).encode()),
        InvalidSignatureError,
    ),
    (
        "HS256 with base64 public key",
        forge.hs256(base64.b64encode(RAW_PUBLIC)),
        InvalidSignatureError,
    ),
    ("RS256 header", eddsa(header(alg="RS256")), InvalidSignatureError),
    ("alg as a list", eddsa(header(alg=["EdDSA"])), InvalidSignatureError),
    ("alg as an object", eddsa(header(alg={"name": "EdDSA"})), InvalidSignatureError),
    ("alg missing", eddsa(header(alg=None)), InvalidSignatureError),
    ("ES256 header", eddsa(header(alg="ES256")), InvalidSignatureError),
    # Keys offered by the token itself: refused, and never fetched.
    (
        "embedded jwk of the attacker",
        eddsa(header(jwk=forge.public_jwk(ATTACKER)), key=ATTACKER),
        InvalidClaimsError,
    ),
    (
        "jku to the attacker",
        eddsa(header(jku="https://evil.example/jwks.json"), key=ATTACKER),
        InvalidClaimsError,
    ),
    (
        "x5u to the attacker",
        eddsa(header(x5u="https://evil.example/cert.pem"), key=ATTACKER),
        InvalidClaimsError,
    ),
    ("x5c chain", eddsa(header(x5c=["MIIB"]), key=ATTACKER), InvalidClaimsError),
    ("jku on a validly signed token", eddsa(header(jku=JWKS_URL)), InvalidClaimsError),
    # Critical extensions we do not understand: the JWS cannot be processed at all.
    ("crit unknown", eddsa(header(crit=["exp"], exp=1)), MalformedTokenError),
    ("crit b64 (RFC 7797)", eddsa(header(crit=["b64"], b64=False)), MalformedTokenError),
    ("b64 false without crit", eddsa(header(b64=False)), MalformedTokenError),
    # Issuer: exact, never a substring, prefix, or list.
    (
        "iss shorter (partial)",
        eddsa(body=claims(iss="https://auth.example.co")),
        InvalidClaimsError,
    ),
    ("iss without scheme", eddsa(body=claims(iss="auth.example.com")), InvalidClaimsError),
    ("iss trailing slash", eddsa(body=claims(iss=ISSUER + "/")), InvalidClaimsError),
    (
        "iss as suffix host",
        eddsa(body=claims(iss="https://auth.example.com.evil.example")),
        InvalidClaimsError,
    ),
    ("iss as a list", eddsa(body=claims(iss=[ISSUER])), InvalidClaimsError),
    ("iss as an object", eddsa(body=claims(iss={ISSUER: 1})), InvalidClaimsError),
    ("iss missing", eddsa(body=claims(iss=None)), InvalidClaimsError),
    # Audience: required, exact.
    ("aud missing", eddsa(body=claims(aud=None)), InvalidClaimsError),
    ("aud wrong", eddsa(body=claims(aud="other-api")), InvalidClaimsError),
    ("aud partial", eddsa(body=claims(aud="my-ap")), InvalidClaimsError),
    ("aud list without ours", eddsa(body=claims(aud=["a", "b"])), InvalidClaimsError),
    ("aud list with an object", eddsa(body=claims(aud=[AUDIENCE, {}])), InvalidClaimsError),
    ("aud an object", eddsa(body=claims(aud={AUDIENCE: 1})), InvalidClaimsError),
    # Other required claims.
    ("sub missing", eddsa(body=claims(sub=None)), InvalidClaimsError),
    ("exp missing", eddsa(body=claims(exp=None)), InvalidClaimsError),
    ("iat missing", eddsa(body=claims(iat=None)), InvalidClaimsError),
    ("exp not a number", eddsa(body=claims(exp="tomorrow")), InvalidClaimsError),
    # The validity window (leeway 30 s).
    ("expired", eddsa(body=claims(exp=int(NOW) - 31)), ExpiredTokenError),
    ("not yet valid (nbf)", eddsa(body=claims(nbf=int(NOW) + 120)), ExpiredTokenError),
    ("issued in the future (iat)", eddsa(body=claims(iat=int(NOW) + 120)), ExpiredTokenError),
    # Type: an ID token or a plain JWT is not an access token.
    ("typ JWT", eddsa(header(typ="JWT")), InvalidClaimsError),
    ("typ missing", eddsa(header(typ=None)), InvalidClaimsError),
    ("typ as a list", eddsa(header(typ=["at+jwt"])), InvalidClaimsError),
    ("typ of a license file", eddsa(header(typ="gatehouse-license+jwt")), InvalidClaimsError),
    # Malformed segments.
    ("empty", "", MalformedTokenError),
    ("one segment", "abc", MalformedTokenError),
    ("two segments", "abc.def", MalformedTokenError),
    ("four segments", VALID + ".abc", MalformedTokenError),
    ("empty segments", "..", MalformedTokenError),
    ("header not JSON", "bm90IGpzb24.e30.c2ln", MalformedTokenError),
    ("header a JSON list", forge.b64(b"[1]") + ".e30.c2ln", MalformedTokenError),
    ("payload not JSON", eddsa(body=b"not json"), MalformedTokenError),
    ("payload a JSON list", eddsa(body=b"[1, 2]"), MalformedTokenError),
    ("whitespace inside", VALID[:20] + " " + VALID[20:], MalformedTokenError),
    ("non-ASCII", VALID[:20] + "é" + VALID[21:], MalformedTokenError),
    ("no kid", eddsa(header(kid=None)), MalformedTokenError),
    ("kid not a string", eddsa(header(kid=7)), MalformedTokenError),
    ("kid an object", eddsa(header(kid={"k": 1})), MalformedTokenError),
    ("deeply nested header", forge.b64(b"[" * 6000) + ".e30.c2ln", MalformedTokenError),
    # Bad padding and alphabet.
    ("padded header segment", _padded(VALID), MalformedTokenError),
    ("padded signature", VALID + "==", MalformedTokenError),
    ("signature of impossible length", VALID[:-1], MalformedTokenError),
    ("standard base64 alphabet", VALID[:-2] + "+/", MalformedTokenError),
    ("non-canonical base64 signature", _non_canonical(VALID), MalformedTokenError),
    # Size: refused before decoding.
    ("oversized (over 8 KiB)", _oversized(), MalformedTokenError),
    # Keys.
    ("kid not in the JWKS", eddsa(header(kid="not-there"), key=ATTACKER), UnknownKeyError),
    ("right kid, another key", eddsa(key=ATTACKER), InvalidSignatureError),
    (
        "signature of another token",
        VALID.rsplit(".", 1)[0] + "." + eddsa(body=claims(sub="admin")).rsplit(".", 1)[1],
        InvalidSignatureError,
    ),
]


class RecordingJwks:
    """Serves the JWKS at JWKS_URL and records every request the verifier makes."""

    def __init__(self) -> None:
        self.urls: list[str] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.urls.append(str(request.url))
        if str(request.url) == JWKS_URL:
            return httpx.Response(200, json=forge.jwks())
        return httpx.Response(404)


def _verifier(recorder: RecordingJwks) -> TokenVerifier:
    return TokenVerifier(
        ISSUER,
        AUDIENCE,
        jwks_url=JWKS_URL,
        http_client=httpx.Client(transport=httpx.MockTransport(recorder)),
        clock=lambda: NOW,
    )


def test_the_forge_makes_tokens_the_verifier_accepts() -> None:
    """The table's baseline: an untouched forged token is a valid one."""
    recorder = RecordingJwks()
    assert _verifier(recorder).verify(VALID).subject == "user-1"
    assert recorder.urls == [JWKS_URL]


@pytest.mark.parametrize(
    ("token", "error"), [(t, e) for _, t, e in HOSTILE], ids=[name for name, _, _ in HOSTILE]
)
def test_a_hostile_token_is_refused_with_its_precise_error(
    token: str, error: type[InvalidTokenError]
) -> None:
    """Each attack raises exactly its InvalidTokenError subclass, and the only URL ever
    requested is the configured JWKS (nothing from the token's header)."""
    recorder = RecordingJwks()
    verifier = _verifier(recorder)
    with pytest.raises(InvalidTokenError) as raised:
        verifier.verify(token)
    assert type(raised.value) is error, raised.value.reason
    assert set(recorder.urls) <= {JWKS_URL}


@pytest.mark.parametrize(
    ("token", "error"), [(t, e) for _, t, e in HOSTILE], ids=[name for name, _, _ in HOSTILE]
)
async def test_averify_refuses_each_hostile_token_the_same_way(
    token: str, error: type[InvalidTokenError]
) -> None:
    """The async path raises the same precise subclass for each row, fetching nothing but
    the configured JWKS."""
    recorder = RecordingJwks()
    async with httpx.AsyncClient(transport=httpx.MockTransport(recorder)) as http:
        verifier = TokenVerifier(
            ISSUER, AUDIENCE, jwks_url=JWKS_URL, async_http_client=http, clock=lambda: NOW
        )
        with pytest.raises(InvalidTokenError) as raised:
            await verifier.averify(token)
    assert type(raised.value) is error, raised.value.reason
    assert set(recorder.urls) <= {JWKS_URL}


@pytest.mark.parametrize(
    "token",
    [t for name, t, _ in HOSTILE if name.startswith(("embedded jwk", "jku", "x5u", "x5c"))],
)
def test_key_urls_in_a_header_are_never_fetched_even_with_a_cold_cache(token: str) -> None:
    """A token offering its own key is refused before any key lookup: not even our JWKS is
    fetched for it, let alone the URL it names."""
    recorder = RecordingJwks()
    with pytest.raises(InvalidClaimsError):
        _verifier(recorder).verify(token)
    assert recorder.urls == []


def test_an_oversized_token_is_refused_before_anything_is_fetched() -> None:
    """Over 8 KiB: MalformedTokenError with no request, whatever the token contains."""
    recorder = RecordingJwks()
    with pytest.raises(MalformedTokenError, match="8 KiB"):
        _verifier(recorder).verify("a" * 8193)
    assert recorder.urls == []


def _oversized_jwks(request: httpx.Request) -> httpx.Response:
    """A JWKS endpoint that answers a valid document padded past the verifier's limit."""
    document = {**forge.jwks(), "padding": "x" * (MAX_DOCUMENT_BYTES + 1)}
    return httpx.Response(200, json=document)


def test_an_oversized_jwks_is_refused_as_it_streams_in(caplog: pytest.LogCaptureFixture) -> None:
    """A JWKS document over the limit is not parsed: no key is installed, the token's kid
    is unknown, and the failure is logged as a warning."""
    verifier = TokenVerifier(
        ISSUER,
        AUDIENCE,
        jwks_url=JWKS_URL,
        http_client=httpx.Client(transport=httpx.MockTransport(_oversized_jwks)),
        clock=lambda: NOW,
    )
    with (
        caplog.at_level(logging.WARNING, logger="gatehouse.verifier"),
        pytest.raises(UnknownKeyError),
    ):
        verifier.verify(VALID)
    assert any("exceeds" in record.getMessage() for record in caplog.records)


async def test_averify_refuses_an_oversized_jwks_too() -> None:
    async with httpx.AsyncClient(transport=httpx.MockTransport(_oversized_jwks)) as http:
        verifier = TokenVerifier(
            ISSUER, AUDIENCE, jwks_url=JWKS_URL, async_http_client=http, clock=lambda: NOW
        )
        with pytest.raises(UnknownKeyError):
            await verifier.averify(VALID)
