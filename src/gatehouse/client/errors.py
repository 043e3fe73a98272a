"""The client's one error tree: catch `AuthError` for anything `gatehouse.client` raises.

AuthError                    the root; `status`, `code`, `detail` and `problem` carry the
│                            server's answer (RFC 9457 problem, or RFC 6749 `error`) when
│                            there was one, and never a token, key or password
├── InvalidCredentials       wrong username or password, or an API key the server refused
├── SessionRevoked           logged out, revoked, expired, or a refresh token refused
├── RateLimited              429; `retry_after` in seconds when the server said
├── ServerUnavailable        unreachable, timed out or 5xx after bounded retries
├── ApiError                 any other refusal (`ApiError(status, code, detail)`)
└── LicenseError             machine licensing: this machine holds no usable license
    ├── LicenseInvalid       the license file is malformed, unsigned, signed by an unknown
    │                        key, of the wrong type, or has a missing or ill-typed claim
    ├── LicenseExpired       the license file's offline grace (`exp`) has passed
    ├── LicenseMismatch      the license file was issued to another machine's fingerprint
    ├── LicenseDenied        the server refused this machine (`status`, `code`, `detail`)
    └── LicenseUnavailable   the server cannot be reached and no license file is cached

The module imports nothing, so offline verification and the hardware reader stay light.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

_DETAIL_LIMIT = 500


class AuthError(Exception):
    """Root of every exception the client raises.

    Attributes:
        status: the HTTP status of the server's answer, None when there was no answer.
        code: the answer's stable code (problem `code` or OAuth `error`), else None.
        detail: the answer's human-readable detail (cut to 500 characters), else "".
        problem: the whole parsed error body (empty when there was none).
    """

    def __init__(
        self,
        message: str = "",
        *,
        status: int | None = None,
        code: str | None = None,
        detail: str = "",
        problem: Mapping[str, Any] | None = None,
    ) -> None:
        if message:
            super().__init__(message)
        else:
            super().__init__()
        self.status = status
        self.code = code
        self.detail = detail[:_DETAIL_LIMIT]
        self.problem: Mapping[str, Any] = dict(problem or {})


class InvalidCredentials(AuthError):
    """The server refused the username and password, or the API key."""


class SessionRevoked(AuthError):
    """There is no live session: never logged in, logged out, revoked or expired."""


class RateLimited(AuthError):
    """The server asked the client to slow down (429).

    Attributes:
        retry_after: seconds to wait, from `Retry-After`; None when the server did not say.
    """

    def __init__(
        self,
        retry_after: float | None,
        *,
        detail: str = "",
        code: str | None = None,
        problem: Mapping[str, Any] | None = None,
    ) -> None:
        message = "rate limited" + (f"; retry after {retry_after:g} s" if retry_after else "")
        super().__init__(message, status=429, code=code, detail=detail, problem=problem)
        self.retry_after = retry_after


class ServerUnavailable(AuthError):
    """The server could not be reached, timed out or failed (5xx), after bounded retries.

    Attributes:
        attempts: how many requests were made before giving up.
    """

    def __init__(
        self,
        message: str,
        *,
        attempts: int,
        status: int | None = None,
        code: str | None = None,
        detail: str = "",
        problem: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(message, status=status, code=code, detail=detail, problem=problem)
        self.attempts = attempts


class ApiError(AuthError):
    """The server refused the request for another reason (409 `username_taken`, 422, ...)."""

    status: int
    code: str

    def __init__(
        self, status: int, code: str, detail: str, *, problem: Mapping[str, Any] | None = None
    ) -> None:
        message = f"{status} {code}" + (f": {detail[:_DETAIL_LIMIT]}" if detail else "")
        super().__init__(message, status=status, code=code, detail=detail, problem=problem)


class LicenseError(AuthError):
    """This machine holds no license that may be used now."""


class LicenseInvalid(LicenseError):
    """The license file must not be trusted: bad shape, signature, key, type or claims."""


class LicenseExpired(LicenseError):
    """The license file verified but its offline grace period is over."""


class LicenseMismatch(LicenseError):
    """The license file verified but names another machine's fingerprint."""


class LicenseDenied(LicenseError):
    """The server answered with a problem (RFC 9457) refusing this machine.

    Attributes:
        status: the HTTP status of the answer (401, 403, 422, ...).
        code: the problem's stable `code` (`unknown_device`, `device_revoked`, ...).
        detail: the problem's human-readable `detail` (cut to 500 characters).
    """

    status: int
    code: str

    def __init__(self, status: int, code: str, detail: str) -> None:
        detail = detail[:_DETAIL_LIMIT]
        message = f"the license server refused this machine ({status} {code})"
        super().__init__(
            f"{message}: {detail}" if detail else message, status=status, code=code, detail=detail
        )


class LicenseUnavailable(LicenseError):
    """The server could not be asked and no usable license file is cached."""
