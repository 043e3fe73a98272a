"""`TokenVerifier.verify` (the sync path) against a real `gatehouse serve` over loopback TCP:
a key rotated with `gatehouse keys rotate` is picked up, and once the server is gone the
cached keys keep verifying while an uncached kid is refused and a warning is logged."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gatehouse.verifier import TokenVerifier, UnknownKeyError
from tests.e2e.harness import Deployment, login, register
from tests.verifier import forge

SERVE_ENV = {"GATEHOUSE_KEY_REFRESH_INTERVAL": "1"}
ISSUER = "http://127.0.0.1:8000"  # the default issuer; the JWKS is given by URL instead
AUDIENCE = "gatehouse"


def _login_with_new_kid(client: httpx.Client, old_kid: str) -> str:
    """Log in until the server signs with the rotated key (it reloads keys every second)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        token = login(client, "alice")
        if jwt.get_unverified_header(token)["kid"] != old_kid:
            return token
        time.sleep(0.2)
    raise AssertionError("the server never signed with the rotated key")


def test_sync_verify_follows_rotation_and_survives_the_server_going_away(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A given jwks_url on plain http is used as is; `gatehouse keys rotate` is followed with
    one refetch; with the server stopped, known keys verify (past the TTL too), an unknown
    kid after the cooldown is UnknownKeyError and each failed fetch is logged as a warning."""
    deployment = Deployment.fresh(tmp_path)
    requests: list[str] = []
    offset = [0.0]
    http = httpx.Client(
        timeout=2.0, event_hooks={"request": [lambda r: requests.append(r.url.path)]}
    )
    with deployment.serve(env=SERVE_ENV) as server, server.client() as client:
        verifier = TokenVerifier(
            ISSUER,
            AUDIENCE,
            jwks_url=f"{server.base_url}/.well-known/jwks.json",
            http_client=http,
            clock=lambda: time.time() + offset[0],
        )
        register(client, "alice")
        first = login(client, "alice")
        assert verifier.verify(first).key_id == jwt.get_unverified_header(first)["kid"]
        assert requests == ["/.well-known/jwks.json"]

        rotated = deployment.cli("keys", "rotate", env=SERVE_ENV)
        assert rotated.returncode == 0, rotated.stderr
        second = _login_with_new_kid(client, jwt.get_unverified_header(first)["kid"])
        assert verifier.verify(second).subject == verifier.verify(first).subject
        assert requests == ["/.well-known/jwks.json"] * 2

    # The server is stopped: its port refuses connections.
    offset[0] = 31.0  # past the cooldown, so an unknown kid may try a fetch
    caplog.set_level(logging.WARNING, logger="gatehouse.verifier")
    stranger = forge.eddsa(
        forge.header(kid="never-published"),
        jwt.decode(second, options={"verify_signature": False}),
        key=Ed25519PrivateKey.generate(),
    )
    with pytest.raises(UnknownKeyError):
        verifier.verify(stranger)
    assert len(requests) == 3  # one attempt, refused by the closed port
    assert "could not fetch the JWKS" in caplog.text
    assert "verifying with 2 cached key(s)" in caplog.text
    assert verifier.verify(first).key_id != verifier.verify(second).key_id
    with pytest.raises(UnknownKeyError):
        verifier.verify(stranger)
    assert len(requests) == 3  # within the cooldown of the failure: no new attempt

    offset[0] = 400.0  # past the JWKS TTL too: the stale keys are all there is, and serve
    assert verifier.verify(second).subject
    assert len(requests) == 4
    assert caplog.text.count("could not fetch the JWKS") == 2
    http.close()
