"""The access log and the HTTP metrics: one pure ASGI layer, one measurement per request.

`AccessLog` sits inside `RequestContext` (so the request id and client address are set)
and outside Starlette's error handling (so a 500 is counted and logged like any answer).
When the response's last byte has been handed to the server it:

- counts the request in `gatehouse_http_requests_total{route,method,status}` and observes
  its duration in `gatehouse_http_request_duration_seconds{route,method}`. `route` is the
  matched route's template (`/users/me/sessions/{session_id}`), never the raw path, so the
  label set stays bounded whatever clients send; a request no route matched (unknown paths,
  and bodies refused before routing) counts as `unmatched`, an unusual method as `other`;
- writes one line on the `gatehouse.access` logger (when it is enabled: `gatehouse serve
  --no-access-log` turns it off): method, route, path, status, duration, client address,
  user agent; the formatter adds the request id. The path keeps its query string with the
  value of every parameter whose name holds `token`, `key`, `secret` or `password`
  replaced by `[redacted]`: reset and verification links carry `?token=`.

An exception that escapes the app has been answered (500) and logged, with the request id,
by Starlette's error middleware and `http/errors.py`; it stops here, so uvicorn does not log
it a second time without one.
"""

from __future__ import annotations

import contextlib
import logging
import time
from urllib.parse import unquote_plus

from prometheus_client import Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gatehouse.server import metrics
from gatehouse.server.context import current_request
from gatehouse.server.logs import ACCESS_LOGGER, FIELDS

UNMATCHED = "unmatched"
REDACTED = "[redacted]"
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_SENSITIVE = ("token", "key", "secret", "password")
_PATH_MAX = 2048

access_log = logging.getLogger(ACCESS_LOGGER)


def redact_query(query: bytes) -> str:
    """The query string with the value of every sensitive parameter replaced.

    The name is compared decoded (`%74oken` is `token`) and case-folded; the rest of the
    string is kept as it was sent.
    """
    text = query.decode("latin-1")
    parts = text.split("&")
    for index, part in enumerate(parts):
        name, sep, _ = part.partition("=")
        folded = unquote_plus(name).casefold()
        if any(word in folded for word in _SENSITIVE):
            parts[index] = f"{name}={REDACTED}" if sep else name
    return "&".join(parts)


def logged_path(scope: Scope) -> str:
    """The request target as sent, its sensitive query values redacted, at most 2 KiB."""
    raw: bytes | None = scope.get("raw_path")
    path: str = raw.decode("latin-1") if raw else scope.get("path", "")
    query = scope.get("query_string", b"")
    if query:
        path = f"{path}?{redact_query(query)}"
    return path if len(path) <= _PATH_MAX else path[:_PATH_MAX] + "..."


def route_template(scope: Scope) -> str:
    route = scope.get("route")
    template = getattr(route, "path", None)
    return template if isinstance(template, str) and template else UNMATCHED


class AccessLog:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        # Labelled children, looked up once per distinct (route, method, status): `labels()`
        # validates and locks on every call, a dict lookup does not.
        self._series: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500  # what uvicorn answers if the app never starts a response

        async def send_and_watch(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            # Starlette's error middleware has answered 500 and http/errors.py has logged the
            # traceback, with the request id. Passed on, the exception would be logged again
            # by uvicorn, without one (and the connection closed for nothing).
            with contextlib.suppress(Exception):
                await self.app(scope, receive, send_and_watch)
        finally:
            self._record(scope, status, time.perf_counter() - start)

    def _record(self, scope: Scope, status: int, seconds: float) -> None:
        route = route_template(scope)
        method = scope["method"]
        if method not in _METHODS:
            method = "other"
        key = (route, method, status)
        series = self._series.get(key)
        if series is None:
            series = (
                metrics.HTTP_REQUESTS.labels(route, method, str(status)),
                metrics.HTTP_DURATION.labels(route, method),
            )
            self._series[key] = series
        series[0].inc()
        series[1].observe(seconds)
        if access_log.isEnabledFor(logging.INFO):
            self._log_line(scope, route, status, seconds)

    @staticmethod
    def _log_line(scope: Scope, route: str, status: int, seconds: float) -> None:
        context = current_request.get()
        client = scope.get("client")
        ip = context.ip if context is not None else (client[0] if client else None)
        path = logged_path(scope)
        milliseconds = round(seconds * 1000, 2)
        fields = {
            "method": scope["method"],
            "route": route,
            "path": path,
            "status": status,
            "duration_ms": milliseconds,
            "client_ip": ip,
            "user_agent": context.user_agent if context is not None else None,
        }
        access_log.info(
            '%s - "%s %s" %d %.2f ms',
            ip or "-",
            scope["method"],
            path,
            status,
            milliseconds,
            extra={FIELDS: fields},
        )
