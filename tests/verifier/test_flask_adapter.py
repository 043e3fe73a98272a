"""`gatehouse.verifier.flask.require_token` on a tiny Flask app: 200 with the claims in
`flask.g.gatehouse_claims`, 401 and 403 with RFC 6750 challenges and problem+json bodies."""

from __future__ import annotations

from typing import Any

import flask
import pytest
from flask.testing import FlaskClient

from gatehouse.verifier import AccessTokenVerifier, StaticKeys
from gatehouse.verifier.flask import require_token
from tests.verifier import forge

VERIFIER = AccessTokenVerifier(
    keys=StaticKeys({forge.KID: forge.KEY.public_key()}),
    issuer=forge.ISSUER,
    audience=forge.AUDIENCE,
    clock=lambda: forge.NOW,
)


def service() -> flask.Flask:
    app = flask.Flask(__name__)

    @app.get("/me")
    @require_token(VERIFIER)
    def me() -> Any:
        claims = flask.g.gatehouse_claims
        return {"sub": claims.subject, "roles": sorted(claims.roles)}

    @app.get("/admin")
    @require_token(VERIFIER, roles=["admin"])
    def admin() -> Any:
        return {"sub": flask.g.gatehouse_claims.subject}

    @app.get("/reports")
    @require_token(VERIFIER, scopes=["reports:read"])
    def reports() -> Any:
        return {"reports": []}

    return app


@pytest.fixture
def client() -> FlaskClient:
    return service().test_client()


def token(**changes: Any) -> dict[str, str]:
    return {"Authorization": "Bearer " + forge.eddsa(body=forge.claims(**changes))}


def test_a_valid_token_reaches_the_view_with_claims_in_g(client: FlaskClient) -> None:
    """200, and the view reads the claims from flask.g.gatehouse_claims."""
    response = client.get("/me", headers=token())
    assert response.status_code == 200
    assert response.json == {"sub": "user-1", "roles": ["user"]}


def test_no_token_is_401_with_a_bare_bearer_challenge(client: FlaskClient) -> None:
    """RFC 6750 s3.1: no credentials, `WWW-Authenticate: Bearer`, a problem+json body."""
    response = client.get("/me")
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert response.mimetype == "application/problem+json"
    assert response.get_json(force=True)["status"] == 401


@pytest.mark.parametrize(
    "headers",
    [
        {"Authorization": "Bearer not-a-token"},
        token(exp=int(forge.NOW) - 60),
        token(iss="https://auth.example.co"),
    ],
    ids=["garbage", "expired", "partial issuer"],
)
def test_a_bad_or_expired_token_is_401_invalid_token(
    client: FlaskClient, headers: dict[str, str]
) -> None:
    """401, `Bearer error="invalid_token"`, and the RFC 9457 body names the error."""
    response = client.get("/me", headers=headers)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith('Bearer error="invalid_token"')
    body = response.get_json(force=True)
    assert body["status"] == 401
    assert body["error"] == "invalid_token"


def test_a_missing_role_is_403_insufficient_scope(client: FlaskClient) -> None:
    """A user's token at the admin view: 403 naming the role; an admin's passes."""
    response = client.get("/admin", headers=token())
    assert response.status_code == 403
    assert 'error="insufficient_scope"' in response.headers["WWW-Authenticate"]
    assert 'scope="admin"' in response.headers["WWW-Authenticate"]
    assert response.get_json(force=True)["error"] == "insufficient_scope"
    assert client.get("/admin", headers=token(roles=["admin", "user"])).status_code == 200


def test_scopes_come_from_the_scope_claim(client: FlaskClient) -> None:
    """Without `scope` 403; with the scope listed 200."""
    assert client.get("/reports", headers=token()).status_code == 403
    granted = token(scope="reports:read", client_id="ghk_x")
    assert client.get("/reports", headers=granted).status_code == 200
