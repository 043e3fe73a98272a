"""A FastAPI service that only Gatehouse users reach, and one route only admins reach.

Usage: GATEHOUSE_ISSUER=http://127.0.0.1:8000 uvicorn resource_fastapi:app --port 8001
The verifier finds the signing keys through the issuer's discovery document and checks
every token locally: no call to Gatehouse per request.
"""

import os
from typing import Annotated

from fastapi import Depends, FastAPI

from gatehouse.verifier import AccessTokenClaims, TokenVerifier
from gatehouse.verifier.fastapi import Authenticated, require_roles

verifier = TokenVerifier(
    os.environ.get("GATEHOUSE_ISSUER", "http://127.0.0.1:8000"),
    os.environ.get("GATEHOUSE_AUDIENCE", "gatehouse"),
    # Default: the jwks_uri of the issuer's discovery document.
    jwks_url=os.environ.get("GATEHOUSE_JWKS_URL"),
)
app = FastAPI(title="Notes")

User = Annotated[AccessTokenClaims, Depends(Authenticated(verifier))]
Admin = Annotated[AccessTokenClaims, Depends(require_roles(verifier, "admin"))]


@app.get("/notes")
def notes(claims: User) -> dict[str, object]:
    return {"service": "fastapi", "owner": claims.subject, "roles": sorted(claims.roles)}


@app.get("/admin/report")
def report(claims: Admin) -> dict[str, object]:
    return {"service": "fastapi", "report": "all quiet", "by": claims.subject}
