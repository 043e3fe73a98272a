"""The public surface of `gatehouse.client` and its one error tree.

The last tests read answers the real server does not give today (429) or gives only when
its database is down (503 with Retry-After), as httpx responses built here: they fix how
such an answer is read, not how the server behaves.
"""

from __future__ import annotations

import httpx

import gatehouse.client as sdk
from gatehouse.client import (
    ApiError,
    AuthError,
    InvalidCredentials,
    LicenseDenied,
    LicenseError,
    RateLimited,
    ServerUnavailable,
    SessionRevoked,
)
from gatehouse.client._protocol import RetryPolicy, error_for

EXPECTED = {
    "Client", "AsyncClient", "TokenAuth", "AsyncTokenAuth",
    "TokenPair", "ClientToken", "User", "SessionInfo",
    "TokenStore", "StoredTokens", "MemoryTokenStore", "FileTokenStore",
    "AuthError", "InvalidCredentials", "SessionRevoked", "RateLimited", "ServerUnavailable",
    "ApiError",
    "check_license", "check_license_async", "verify_license_file", "LicenseClaims",
    "LICENSE_TYPE", "collect", "Fingerprint", "FingerprintError",
    "LicenseError", "LicenseInvalid", "LicenseExpired", "LicenseMismatch", "LicenseDenied",
    "LicenseUnavailable",
}  # fmt: skip


def test_all_is_the_fixed_public_surface() -> None:
    """`__all__` names exactly the public API, and each name is importable."""
    assert set(sdk.__all__) == EXPECTED
    assert len(sdk.__all__) == len(EXPECTED)
    for name in sdk.__all__:
        assert getattr(sdk, name) is not None


def test_every_client_error_is_an_auth_error() -> None:
    """Each exception class in `__all__` descends from AuthError, the licensing tree and the
    hardware reader's FingerprintError (also an OSError) included."""
    errors = [getattr(sdk, n) for n in sdk.__all__ if n.endswith(("Error", "Revoked"))]
    errors += [InvalidCredentials, RateLimited, ServerUnavailable]
    for cls in errors:
        assert issubclass(cls, AuthError), cls
    assert issubclass(sdk.FingerprintError, OSError)
    assert issubclass(LicenseError, AuthError)
    denied = LicenseDenied(403, "device_revoked", "revoked")
    assert (denied.status, denied.code, denied.detail) == (403, "device_revoked", "revoked")


def _answer(status: int, body: bytes, **headers: str) -> httpx.Response:
    return httpx.Response(status, content=body, headers=headers)


def test_a_429_is_rate_limited_with_its_retry_after() -> None:
    """429 with Retry-After: 7 becomes RateLimited(retry_after=7.0) carrying the problem."""
    error = error_for(
        _answer(429, b'{"code": "rate_limited", "detail": "slow down"}', **{"Retry-After": "7"})
    )
    assert isinstance(error, RateLimited)
    assert error.retry_after == 7.0
    assert (error.status, error.code, error.detail) == (429, "rate_limited", "slow down")


def test_oauth_bodies_fill_code_and_detail() -> None:
    """An RFC 6749 `{error, error_description}` body gives `code` and `detail`."""
    error = error_for(_answer(400, b'{"error": "invalid_scope", "error_description": "no"}'))
    assert isinstance(error, ApiError)
    assert (error.status, error.code, error.detail) == (400, "invalid_scope", "no")


def test_a_401_invalid_token_is_session_revoked() -> None:
    """A protected route's 401 invalid_token means the session is gone."""
    error = error_for(_answer(401, b'{"code": "invalid_token", "detail": "expired"}'))
    assert isinstance(error, SessionRevoked)


def test_a_503_retry_after_stretches_the_backoff_up_to_its_cap() -> None:
    """The wait honours a longer Retry-After, but never beyond max_backoff."""
    policy = RetryPolicy(retries=4, backoff=0.5, max_backoff=8.0)
    busy = _answer(503, b"{}", **{"Retry-After": "5"})
    assert policy.delay(1, None) == 0.5
    assert policy.delay(1, busy) == 5.0
    assert policy.delay(1, _answer(503, b"{}", **{"Retry-After": "60"})) == 8.0
