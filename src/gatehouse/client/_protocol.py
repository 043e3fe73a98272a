"""The client's rules about the wire, without I/O: answers to errors, retries, key shapes.

`Client` and `AsyncClient` send with httpx and ask this module what each answer means:

- `error_for(response)`: the `AuthError` for a refusal, from its RFC 9457 problem
  (`{type, title, status, detail, code}`) or RFC 6749 body (`{error, error_description}`).
- `parse(response, build)`: a 2xx body through a model's `from_json`; a wrong shape is an
  `ApiError` with code `invalid_response`, never a `KeyError`.
- `RetryPolicy`: which failures are worth another attempt, and how long to wait.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx

from gatehouse.client.errors import (
    ApiError,
    AuthError,
    InvalidCredentials,
    RateLimited,
    ServerUnavailable,
    SessionRevoked,
)

T = TypeVar("T")

# 503 (storage_unavailable: the transaction did not commit) is retried for every request;
# 502 and 504 from a proxy, and a connection lost after the request went out, only for
# idempotent methods: the server may have acted, and replaying a refresh would spend a
# rotated token twice, which revokes the session (RFC 9700 s4.14.2). Another 5xx is a bug
# and is not retried, though it is still `ServerUnavailable`.
_IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "DELETE"})
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
_BAD_CREDENTIALS = frozenset({"invalid_credentials", "invalid_client"})
_API_KEY_PREFIX = "ghk"


def _body(response: httpx.Response) -> dict[str, Any]:
    try:
        body = json.loads(response.content)
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _retry_after(response: httpx.Response) -> float | None:
    try:
        value = float(response.headers.get("Retry-After", ""))
    except ValueError:
        return None
    return value if value >= 0 else None


def error_for(response: httpx.Response, *, attempts: int = 1) -> AuthError:
    """The error for a non-2xx answer of Gatehouse."""
    problem = _body(response)
    status = response.status_code
    raw_code = problem.get("code", problem.get("error"))
    code = raw_code if isinstance(raw_code, str) else f"http_{status}"
    raw_detail = problem.get("detail", problem.get("error_description"))
    detail = raw_detail if isinstance(raw_detail, str) else response.reason_phrase
    if status == 429:
        return RateLimited(_retry_after(response), code=code, detail=detail, problem=problem)
    if status >= 500:
        return ServerUnavailable(
            f"the server answered {status} {code}",
            attempts=attempts,
            status=status,
            code=code,
            detail=detail,
            problem=problem,
        )
    if status == 401 and code in _BAD_CREDENTIALS:
        return InvalidCredentials(
            f"{status} {code}", status=status, code=code, detail=detail, problem=problem
        )
    if status == 401:
        return SessionRevoked(
            f"{status} {code}", status=status, code=code, detail=detail, problem=problem
        )
    return ApiError(status, code, detail, problem=problem)


def parse(response: httpx.Response, build: Callable[[dict[str, Any]], T]) -> T:
    """A 2xx answer's body as a model."""
    try:
        return build(json.loads(response.content))
    except (ValueError, KeyError, TypeError) as exc:
        raise ApiError(
            response.status_code, "invalid_response", f"unexpected answer: {type(exc).__name__}"
        ) from None


def parse_list(response: httpx.Response, build: Callable[[dict[str, Any]], T]) -> list[T]:
    """A 2xx answer whose body is a JSON list of records."""

    def each(body: Any) -> list[T]:
        if not isinstance(body, list):
            raise TypeError("not a list")
        return [build(item) for item in body]

    return parse(response, each)


def split_api_key(key: str) -> tuple[str, str]:
    """`ghk_<id>_<secret>` as OAuth client credentials (`ghk_<id>`, `<secret>`).

    Raises:
        InvalidCredentials: the value is not shaped like a Gatehouse API key (not echoed).
    """
    parts = key.split("_")
    if len(parts) != 3 or parts[0] != _API_KEY_PREFIX or not parts[1] or not parts[2]:
        raise InvalidCredentials("not a Gatehouse API key (ghk_<id>_<secret>)")
    return f"{parts[0]}_{parts[1]}", parts[2]


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Bounded retries with exponential backoff for an unreachable or overloaded server.

    Attributes:
        retries: further attempts after the first (0: never retry).
        backoff: the first wait in seconds; each next wait doubles, up to `max_backoff`.
        max_backoff: the longest single wait.
        deadline: seconds from the first attempt after which no attempt starts and no
            attempt may run on (its timeout is cut to what is left).
    """

    retries: int = 4
    backoff: float = 0.5
    max_backoff: float = 8.0
    deadline: float = 30.0

    def delay(self, attempt: int, response: httpx.Response | None) -> float:
        """The wait before attempt `attempt + 1` (`attempt` counts from 1)."""
        wait: float = min(self.backoff * 2.0 ** (attempt - 1), self.max_backoff)
        if response is not None:
            asked = _retry_after(response)
            if asked is not None:
                wait = min(max(wait, asked), self.max_backoff)
        return wait


class Attempts:
    """The retry loop's bookkeeping, the same for the sync and the async client."""

    def __init__(self, policy: RetryPolicy, timeout: float) -> None:
        self.policy = policy
        self.timeout = timeout
        self.count = 0
        self._deadline = time.monotonic() + policy.deadline

    def next_timeout(self) -> float | None:
        """The timeout of the next attempt, or None when no attempt may start."""
        left = self._deadline - time.monotonic()
        if left <= 0 or self.count > self.policy.retries:
            return None
        self.count += 1
        return min(self.timeout, left)

    @staticmethod
    def retryable(
        method: str, response: httpx.Response | None, error: httpx.RequestError | None
    ) -> bool:
        """Whether this failure may be tried again."""
        idempotent = method.upper() in _IDEMPOTENT
        if response is not None:
            return response.status_code == 503 or (
                idempotent and response.status_code in (502, 504)
            )
        return isinstance(error, _NOT_SENT) or idempotent

    def wait_before_retry(self, response: httpx.Response | None) -> float | None:
        """Seconds to sleep before retrying, or None when the budget is spent."""
        if self.count > self.policy.retries:
            return None
        wait = self.policy.delay(self.count, response)
        if time.monotonic() + wait >= self._deadline:
            return None
        return wait

    def unavailable(self, cause: Exception | None, response: httpx.Response | None) -> AuthError:
        if response is not None:
            return error_for(response, attempts=self.count)
        reason = type(cause).__name__ if cause is not None else "no attempt left"
        return ServerUnavailable(
            f"the server could not be reached after {self.count} attempts ({reason})",
            attempts=self.count,
        )
