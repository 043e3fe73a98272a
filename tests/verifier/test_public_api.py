"""The public surface of `gatehouse.verifier`: fixed by `__all__`, and light to import."""

from __future__ import annotations

import subprocess
import sys

import gatehouse.verifier
import gatehouse.verifier.fastapi
import gatehouse.verifier.flask

EXPECTED = {
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
}


def test_the_public_names_are_exactly_the_documented_ones() -> None:
    """`__all__` lists the agreed names, each importable, and nothing else."""
    assert set(gatehouse.verifier.__all__) == EXPECTED
    assert len(gatehouse.verifier.__all__) == len(EXPECTED)
    for name in EXPECTED:
        assert hasattr(gatehouse.verifier, name)


def test_the_adapters_export_their_entry_points() -> None:
    """The FastAPI and Flask modules export the names the issue gives them."""
    assert set(gatehouse.verifier.fastapi.__all__) == {
        "Authenticated",
        "require_roles",
        "require_scopes",
        "bearer_scheme",
    }
    assert gatehouse.verifier.flask.__all__ == ["require_token"]


def test_every_error_is_caught_by_the_one_root() -> None:
    """Each exported error class is an InvalidTokenError."""
    root = gatehouse.verifier.InvalidTokenError
    for name in EXPECTED:
        value = getattr(gatehouse.verifier, name)
        if isinstance(value, type) and issubclass(value, Exception):
            assert issubclass(value, root), name


def test_importing_the_verifier_loads_no_framework_or_server() -> None:
    """`import gatehouse.verifier` in a fresh interpreter loads neither FastAPI, Starlette,
    Flask, SQLAlchemy nor gatehouse.server."""
    code = (
        "import sys, gatehouse.verifier\n"
        "bad = [m for m in sys.modules if m.split('.')[0] in "
        "('fastapi', 'starlette', 'flask', 'sqlalchemy') or m.startswith('gatehouse.server')]\n"
        "print(','.join(bad))"
    )
    result = subprocess.run(  # noqa: S603 - this interpreter, fixed code
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == ""
