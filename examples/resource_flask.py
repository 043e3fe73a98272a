"""A Flask service that only Gatehouse users reach, and one route only admins reach.

Usage: GATEHOUSE_ISSUER=http://127.0.0.1:8000 PORT=8002 python resource_flask.py
"""

import os

from flask import Flask, g

from gatehouse.verifier import TokenVerifier
from gatehouse.verifier.flask import require_token

verifier = TokenVerifier(
    os.environ.get("GATEHOUSE_ISSUER", "http://127.0.0.1:8000"),
    os.environ.get("GATEHOUSE_AUDIENCE", "gatehouse"),
    # Default: the jwks_uri of the issuer's discovery document.
    jwks_url=os.environ.get("GATEHOUSE_JWKS_URL"),
)
app = Flask(__name__)


@app.get("/notes")
@require_token(verifier)
def notes() -> dict[str, object]:
    claims = g.gatehouse_claims
    return {"service": "flask", "owner": claims.subject, "roles": sorted(claims.roles)}


@app.get("/admin/report")
@require_token(verifier, roles=("admin",))
def report() -> dict[str, object]:
    return {"service": "flask", "report": "all quiet", "by": g.gatehouse_claims.subject}


if __name__ == "__main__":
    app.run(host="127.0.0.1", port=int(os.environ.get("PORT", "8002")))
