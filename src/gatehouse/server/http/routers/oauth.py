"""/oauth: the RFC 6749 token endpoint, RFC 7009 revocation and RFC 7662 introspection.

Every answer is `Cache-Control: no-store`, and errors are RFC 6749 s5.2 bodies `{error,
error_description}`. Parameters come as `application/x-www-form-urlencoded`; a parameter
sent twice, or a body of another type, is `invalid_request` (RFC 6749 s3.2).

- `grant_type=password` (deprecated by RFC 9700 s2.4 for third-party clients) stays for
  first-party programs and Swagger UI's "Authorize": the same service call, timing and
  errors as /auth/login.
- `grant_type=refresh_token` rotates, as /auth/refresh.
- `grant_type=client_credentials` trades an API key (client id `ghk_<id>`, secret `<secret>`,
  by HTTP Basic or in the body, never both) for an access token with the key's scopes.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response

from gatehouse.server.errors import (
    InvalidClientError,
    InvalidInputError,
    NotAuthenticatedError,
    PermissionDeniedError,
    UnsupportedGrantTypeError,
)
from gatehouse.server.http.denials import note_caller
from gatehouse.server.http.deps import ServicesDep, basic_credentials, client_info, client_ip
from gatehouse.server.http.routers.auth import no_store
from gatehouse.server.http.schemas import ClientTokenOut, TokenPairOut
from gatehouse.server.sessions.models import Principal
from gatehouse.server.wiring import Services

router = APIRouter(prefix="/oauth", tags=["oauth"])

_FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
_MAX_VALUE = 1024


def _form_schema(*fields: str, required: tuple[str, ...] = ()) -> dict[str, Any]:
    """The OpenAPI request body of a form endpoint. The form is parsed by `_form`, not by
    FastAPI's Form fields (which cost more per request than the rest of a token exchange)."""
    schema = {
        "type": "object",
        "properties": {name: {"type": "string", "maxLength": _MAX_VALUE} for name in fields},
        "required": list(required),
    }
    return {
        "requestBody": {
            "required": True,
            "content": {"application/x-www-form-urlencoded": {"schema": schema}},
        }
    }


async def _form(request: Request) -> dict[str, str]:
    """The form parameters, each at most once.

    Raises:
        InvalidInputError: the body is not a form, or a parameter is repeated.
    """
    if request.headers.get("content-type", "").split(";")[0].strip().lower() not in _FORM_TYPES:
        raise InvalidInputError("The body must be application/x-www-form-urlencoded.")
    form = await request.form()
    items = form.multi_items()
    values = {name: value for name, value in items if isinstance(value, str)}
    if len(values) != len(items):
        raise InvalidInputError("A parameter is repeated or is not text.")
    if any(len(value) > _MAX_VALUE for value in values.values()):
        raise InvalidInputError("A parameter is too long.")
    return values


def _client_credentials(request: Request, form: dict[str, str]) -> tuple[str, str]:
    """Raises: InvalidClientError (no or broken credentials), InvalidInputError (both ways)."""
    basic = basic_credentials(request)
    in_body = "client_id" in form or "client_secret" in form
    if basic is not None and in_body:
        raise InvalidInputError("Send client credentials by HTTP Basic or in the body, not both.")
    if basic is not None:
        return basic
    client_id, client_secret = form.get("client_id"), form.get("client_secret")
    if not client_id or not client_secret:
        raise InvalidClientError
    return client_id, client_secret


@router.post(
    "/token",
    response_model=TokenPairOut | ClientTokenOut,
    openapi_extra=_form_schema(
        "grant_type",
        "username",
        "password",
        "refresh_token",
        "scope",
        "client_id",
        "client_secret",
        required=("grant_type",),
    ),
)
async def token(request: Request, response: Response, services: ServicesDep) -> Any:
    """Issue tokens.

    For the password and refresh_token grants `scope` and `client_id` are accepted (Swagger
    UI sends them) and not used: every first-party client is public and gets the user's roles.
    """
    form = await _form(request)
    grant = form.get("grant_type")
    if not grant:
        raise InvalidInputError("grant_type is required.")
    no_store(response)
    if grant == "password":
        if not form.get("username") or not form.get("password"):
            raise InvalidInputError("username and password are required.")
        user = await services.accounts.authenticate(
            form["username"], form["password"], ip=client_ip(request)
        )
        return TokenPairOut.of(await services.sessions.open(user, client_info(request)))
    if grant == "refresh_token":
        if not form.get("refresh_token"):
            raise InvalidInputError("refresh_token is required.")
        async with services.guard.attempt(client_ip(request)):
            pair = await services.sessions.refresh(form["refresh_token"])
        return TokenPairOut.of(pair)
    if grant == "client_credentials":
        client_id, client_secret = _client_credentials(request, form)
        async with services.guard.attempt(client_ip(request)):
            issued = await services.api_keys.exchange(client_id, client_secret, form.get("scope"))
        return ClientTokenOut.of(issued)
    raise UnsupportedGrantTypeError


@router.post("/revoke", openapi_extra=_form_schema("token", "token_type_hint", required=("token",)))
async def revoke(request: Request, services: ServicesDep) -> Response:
    """RFC 7009: end what `token` stands for. 200 with an empty body whether or not there was
    anything to end, so the answer never tells which.

    - a refresh token: its session ends (a rotated one too: presenting it is reuse);
    - a session's access token (its signature must verify, and it must not have expired):
      its session ends;
    - an API key, presented whole: the key is revoked (holding it is the authority);
    - a client-credentials access token: nothing is revoked; it ends at its `exp`, or at
      once when its API key is revoked.

    `token_type_hint` is only a hint; every kind is recognised by its shape.
    """
    form = await _form(request)
    token = form.get("token")
    if not token:
        raise InvalidInputError("token is required.")
    await services.authenticator.revoke(token)
    return Response(status_code=200, headers={"Cache-Control": "no-store"})


@router.post("/introspect", openapi_extra=_form_schema("token", required=("token",)))
async def introspect(request: Request, services: ServicesDep) -> dict[str, Any]:
    """RFC 7662: whether an access token is active, and what it says.

    The caller must be an admin (bearer access token or API key with the `admin` scope) or
    hold the `introspect` scope (an API key as Bearer or `X-API-Key`, its client credentials
    by HTTP Basic, or a client-credentials token). Anonymous callers get 401, others 403;
    both are recorded as `introspection.denied` (`http/denials.py`).
    """
    caller = await _introspection_caller(request, services)
    if not (caller.is_admin or "introspect" in caller.roles):
        note_caller(request, caller)
        raise PermissionDeniedError("Introspection needs an admin or the introspect scope.")
    form = await _form(request)
    token = form.get("token")
    if not token:
        raise InvalidInputError("token is required.")
    return await services.authenticator.introspect(token)


async def _introspection_caller(request: Request, services: Services) -> Principal:
    basic = basic_credentials(request)
    if basic is not None:
        return await services.authenticator.authenticate_client(*basic, ip=client_ip(request))
    header = request.headers.get("authorization", "")
    scheme, _, credential = header.partition(" ")
    if scheme.lower() == "bearer" and credential.strip():
        return await services.authenticator.authenticate(credential.strip(), ip=client_ip(request))
    api_key = request.headers.get("x-api-key")
    if api_key:
        return await services.authenticator.authenticate_key(api_key, ip=client_ip(request))
    raise NotAuthenticatedError
