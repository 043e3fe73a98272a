"""The one mapping from errors to HTTP responses.

OAuth endpoints (paths under /oauth/) answer RFC 6749 s5.2 bodies `{error,
error_description}`; everything else answers RFC 9457 problem+json with a stable `code`.
401s carry an RFC 6750 `WWW-Authenticate: Bearer` challenge. Validation errors name the
field and the reason and never echo the submitted value. Unexpected exceptions answer a bare
500 and are logged; no stack trace, SQL or path reaches a response.
"""

from __future__ import annotations

import json
import logging
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from gatehouse.server.errors import (
    AuthenticationError,
    ConflictError,
    EmailUnverifiedError,
    GatehouseError,
    InvalidAccessTokenError,
    InvalidClientError,
    InvalidCredentialsError,
    InvalidGrantError,
    InvalidInputError,
    InvalidScopeError,
    NotFoundError,
    OverloadedError,
    PermissionDeniedError,
    RateLimitedError,
    StorageUnavailableError,
    UnavailableError,
    UnsupportedGrantTypeError,
)
from gatehouse.server.http.denials import record_denial

log = logging.getLogger("gatehouse.http")

OAUTH_PREFIX = "/oauth/"
PROBLEM_JSON = "application/problem+json"
REALM = 'Bearer realm="gatehouse"'
# RFC 6749 s5.2: a failed client authentication by Basic is answered with a Basic challenge.
BASIC_REALM = 'Basic realm="gatehouse"'

# Error class -> (problem+json status, OAuth status, OAuth error code). Looked up along the
# MRO, so a subclass inherits its parent's row unless it has its own.
_TABLE: dict[type[GatehouseError], tuple[int, int, str]] = {
    GatehouseError: (400, 400, "invalid_request"),
    InvalidInputError: (422, 400, "invalid_request"),
    UnsupportedGrantTypeError: (400, 400, "unsupported_grant_type"),
    InvalidScopeError: (422, 400, "invalid_scope"),
    AuthenticationError: (401, 401, "invalid_client"),
    InvalidClientError: (401, 401, "invalid_client"),
    # RFC 6749 s5.2: bad resource-owner credentials are an invalid grant.
    InvalidCredentialsError: (401, 400, "invalid_grant"),
    InvalidAccessTokenError: (401, 401, "invalid_token"),
    InvalidGrantError: (401, 400, "invalid_grant"),
    PermissionDeniedError: (403, 403, "insufficient_scope"),
    NotFoundError: (404, 404, "invalid_request"),
    ConflictError: (409, 400, "invalid_request"),
    # A login refused for an unverified address is an invalid grant to OAuth clients.
    EmailUnverifiedError: (403, 400, "invalid_grant"),
    # OAuth clients get the problem's own code (`rate_limited`, `account_locked`).
    RateLimitedError: (429, 429, ""),
    UnavailableError: (503, 503, "temporarily_unavailable"),
}

# Pydantic error types whose messages may quote the input; they get a neutral reason.
_OPAQUE_REASON_TYPES = {"value_error", "assertion_error", "enum", "literal_error"}


def _row(exc: GatehouseError) -> tuple[int, int, str]:
    for cls in type(exc).__mro__:
        if cls in _TABLE:
            return _TABLE[cls]
    return _TABLE[GatehouseError]  # pragma: no cover - GatehouseError is in every MRO


def is_oauth(request: Request) -> bool:
    return request.url.path.startswith(OAUTH_PREFIX)


# RFC 9110 s15.5.14 renamed 413; Python 3.11's HTTPStatus still has the old phrase.
_TITLES = {413: "Content Too Large"}


def problem_document(status: int, code: str, detail: str, **extra: Any) -> dict[str, Any]:
    """The RFC 9457 body every problem answer has, from the app and from the layers below."""
    return {
        "type": f"urn:gatehouse:problem:{code}",
        "title": _TITLES.get(status) or HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
        "code": code,
        **extra,
    }


def problem_bytes(status: int, code: str, detail: str) -> bytes:
    """`problem_document` serialised as JSONResponse would, for pure ASGI and protocol code."""
    return json.dumps(problem_document(status, code, detail), separators=(",", ":")).encode()


def problem(
    status: int, code: str, detail: str, *, headers: dict[str, str] | None = None, **extra: Any
) -> JSONResponse:
    body = problem_document(status, code, detail, **extra)
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def oauth_error(
    status: int, error: str, description: str, *, challenge: str = REALM
) -> JSONResponse:
    headers = {"Cache-Control": "no-store", "Pragma": "no-cache"}
    if status == 401:
        headers["WWW-Authenticate"] = challenge
    return JSONResponse(
        {"error": error, "error_description": description}, status_code=status, headers=headers
    )


def _challenge(exc: GatehouseError, status: int) -> dict[str, str] | None:
    if isinstance(exc, InvalidAccessTokenError):
        # RFC 6750 s3.1: name the error; the description is a fixed, safe sentence.
        return {
            "WWW-Authenticate": f'{REALM}, error="invalid_token", error_description="{exc.message}"'
        }
    if isinstance(exc, PermissionDeniedError):
        return {"WWW-Authenticate": f'{REALM}, error="insufficient_scope"'}
    if isinstance(exc, InvalidClientError):
        return {"WWW-Authenticate": BASIC_REALM}
    if status == 401:
        return {"WWW-Authenticate": REALM}
    return None


async def handle_gatehouse_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, GatehouseError)  # noqa: S101 - registered for this type only
    status, oauth_status, oauth_code = _row(exc)
    if isinstance(exc, StorageUnavailableError):
        log.warning("storage unavailable: %s", type(exc.__cause__).__name__)
    retry_after = _retry_after(exc)
    # A shed login closes its connection: a flooding client must reconnect before it can
    # send the next one, so the refusals cannot keep the event loop busy (bench/flood).
    close = isinstance(exc, OverloadedError)
    # 401s and 403s of admin routes and of introspection go into the audit trail.
    record_denial(request, oauth_status if is_oauth(request) else status, exc.code)
    if is_oauth(request):
        challenge = BASIC_REALM if isinstance(exc, InvalidClientError) else REALM
        response = oauth_error(
            oauth_status, oauth_code or exc.code, exc.message, challenge=challenge
        )
        if retry_after is not None:
            response.headers["Retry-After"] = retry_after
        if close:
            response.headers["Connection"] = "close"
        return response
    extra: dict[str, Any] = {}
    if isinstance(exc, InvalidInputError) and exc.field:
        extra["errors"] = [{"field": exc.field, "reason": exc.message}]
    headers = _challenge(exc, status)
    if retry_after is not None:
        headers = {"Retry-After": retry_after}
        if close:
            headers["Connection"] = "close"
    return problem(status, exc.code, exc.message, headers=headers, **extra)


def _retry_after(exc: GatehouseError) -> str | None:
    """RFC 9110 s10.2.3: whole seconds, for 429 and 503 answers."""
    if isinstance(exc, RateLimitedError | UnavailableError):
        return str(exc.retry_after)
    return None


def _field(loc: tuple[Any, ...] | list[Any]) -> str:
    parts = [str(p) for p in loc]
    if parts and parts[0] in {"body", "query", "path", "header", "cookie"}:
        parts = parts[1:]
    return ".".join(parts) or "body"


def _reason(error: dict[str, Any]) -> str:
    if error.get("type") in _OPAQUE_REASON_TYPES:
        return "The value is not valid."
    if error.get("type") == "json_invalid":
        return "The body is not valid JSON."
    return str(error.get("msg", "The value is not valid."))


async def handle_validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)  # noqa: S101 - registered for this type only
    # Only location and reason: FastAPI's default handler would echo `input` (passwords).
    errors = [{"field": _field(e.get("loc", ())), "reason": _reason(e)} for e in exc.errors()]
    if is_oauth(request):
        fields = ", ".join(sorted({e["field"] for e in errors}))
        return oauth_error(400, "invalid_request", f"Invalid or missing parameters: {fields}.")
    return problem(422, "validation_failed", "The request is not valid.", errors=errors)


_HTTP_CODES = {
    400: ("malformed_request", "The request body could not be parsed."),
    404: ("not_found", "No such resource."),
    405: ("method_not_allowed", "This method is not allowed here."),
    413: ("payload_too_large", "The request body is too large."),
    415: ("unsupported_media_type", "This content type is not supported."),
}


async def handle_http_exception(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)  # noqa: S101 - registered for this type only
    code, detail = _HTTP_CODES.get(
        exc.status_code, ("http_error", HTTPStatus(exc.status_code).phrase)
    )
    if is_oauth(request) and exc.status_code == 400:
        return oauth_error(400, "invalid_request", detail)
    headers = dict(exc.headers) if exc.headers else None
    return problem(exc.status_code, code, detail, headers=headers)


async def handle_unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return problem(500, "internal_error", "An unexpected error occurred.")


def install(app: FastAPI) -> None:
    app.add_exception_handler(GatehouseError, handle_gatehouse_error)
    app.add_exception_handler(RequestValidationError, handle_validation_error)
    app.add_exception_handler(StarletteHTTPException, handle_http_exception)
    app.add_exception_handler(Exception, handle_unexpected)
