"""/oauth/token: the RFC 6749 token endpoint (password and refresh_token grants).

The password grant is deprecated by RFC 9700 s2.4 for third-party clients. Gatehouse keeps
it for first-party programs (and Swagger UI's "Authorize") and protects it exactly like
/auth/login: the same service call, the same timing, the same errors.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request, Response

from gatehouse.server.errors import InvalidInputError, UnsupportedGrantTypeError
from gatehouse.server.http.deps import ServicesDep, client_info
from gatehouse.server.http.routers.auth import no_store
from gatehouse.server.http.schemas import TokenPairOut

router = APIRouter(prefix="/oauth", tags=["oauth"])

FormStr = Annotated[str | None, Form(max_length=1024)]
GRANT_TYPES = ("password", "refresh_token")


@router.post("/token")
async def token(
    request: Request,
    response: Response,
    services: ServicesDep,
    grant_type: FormStr = None,
    username: FormStr = None,
    password: FormStr = None,
    refresh_token: FormStr = None,
    scope: FormStr = None,
    client_id: FormStr = None,
) -> TokenPairOut:
    """Issue tokens. Errors follow RFC 6749 s5.2: `{error, error_description}`.

    `scope` and `client_id` are accepted (Swagger UI sends them) and not used yet: every
    first-party client is public and gets the user's roles.
    """
    if grant_type is None:
        raise InvalidInputError("grant_type is required.")
    if grant_type == "password":
        if not username or not password:
            raise InvalidInputError("username and password are required.")
        user = await services.accounts.authenticate(username, password)
        pair = await services.sessions.open(user, client_info(request))
    elif grant_type == "refresh_token":
        if not refresh_token:
            raise InvalidInputError("refresh_token is required.")
        pair = await services.sessions.refresh(refresh_token)
    else:
        raise UnsupportedGrantTypeError
    no_store(response)
    return TokenPairOut.of(pair)
