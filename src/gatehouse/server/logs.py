"""How `gatehouse serve` writes its log: one JSON object per line, or text for reading by eye.

`logging_config()` is the `logging.config.dictConfig` that `gatehouse serve` hands to
uvicorn, which applies it in the parent and in every worker before the app starts. Every
logger the server writes through ends on stderr: uvicorn's (`uvicorn`, `uvicorn.error`),
Gatehouse's (`gatehouse*`: background work, warnings, and `gatehouse.access`, the access
log written by `http/access_log.py`), and anything else that propagates to the root logger
(libraries' warnings), so a log shipper reads one format.

A JSON line holds `time` (RFC 3339, UTC, milliseconds), `level`, `logger`, `message`, `pid`,
`request_id` when the line was written while serving a request (`server/context.py`), the
record's structured `fields` (the access log's method, route, status...) and `exception`
(the traceback text) when there is one. Every value goes through `json.dumps`, so a
user-controlled string (a path, a user agent) can neither break the line nor forge a field.

`gatehouse.audit` is the exception: each audit event is already one JSON object (the event
itself, `request_id` included) and is written as is, in both formats.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any, Literal

from gatehouse.server.context import current_request

LogFormat = Literal["json", "text"]

# The name of the `extra` under which a record carries structured fields: merged into the
# JSON object (never over its core keys). Text lines show the message only, so a record
# with fields says what matters in its message too.
FIELDS = "fields"
ACCESS_LOGGER = "gatehouse.access"
AUDIT_LOGGER = "gatehouse.audit"

_CORE_KEYS = frozenset({"time", "level", "logger", "message", "pid", "request_id", "exception"})


def _rfc3339(created: float) -> str:
    seconds = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(created))
    return f"{seconds}.{int(created * 1000) % 1000:03d}Z"


def _exception_text(formatter: logging.Formatter, record: logging.LogRecord) -> str | None:
    text = None
    if record.exc_info:
        if not record.exc_text:
            record.exc_text = formatter.formatException(record.exc_info)
        text = record.exc_text
    if record.stack_info:
        stack = formatter.formatStack(record.stack_info)
        text = f"{text}\n{stack}" if text else stack
    return text


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line (json.dumps escapes newlines and controls)."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": _rfc3339(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            "pid": record.process,
        }
        context = current_request.get()
        if context is not None:
            entry["request_id"] = context.request_id
        fields = getattr(record, FIELDS, None)
        if isinstance(fields, dict):
            for key, value in fields.items():
                if key not in _CORE_KEYS:
                    entry[key] = value
        exception = _exception_text(self, record)
        if exception is not None:
            entry["exception"] = exception
        return json.dumps(entry, default=str, separators=(",", ":"))


class TextFormatter(logging.Formatter):
    """uvicorn's look (`INFO:     message`), plus the request id while serving a request."""

    def format(self, record: logging.LogRecord) -> str:
        line = f"{record.levelname + ':':<9} {record.getMessage()}"
        context = current_request.get()
        if context is not None:
            line += f" request_id={context.request_id}"
        exception = _exception_text(self, record)
        if exception is not None:
            line += "\n" + exception
        return line


def capture_warnings() -> logging.Filter:
    """A no-op filter whose construction routes `warnings` to the `py.warnings` logger.

    dictConfig is the one hook uvicorn runs in every worker before the app, so this is
    where the process's warnings stop going to stderr as bare text (they reach the root
    logger, and the JSON handler, instead).
    """
    logging.captureWarnings(True)
    return logging.Filter()


def logging_config(log_format: LogFormat, *, access_log: bool) -> dict[str, Any]:
    """The dictConfig of `gatehouse serve`: everything on stderr in `log_format`.

    uvicorn's own access log stays off (`gatehouse serve` passes `access_log=False`);
    `gatehouse.access` writes the access log instead, at INFO when `access_log` is true
    and not at all otherwise (the middleware asks `isEnabledFor` before building a line).
    """
    formatter = JsonFormatter if log_format == "json" else TextFormatter
    stream = "ext://sys.stderr"
    # Named "default" and "access" like uvicorn's: uvicorn rewrites those two by name when
    # asked for colours.
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "default": {"()": f"{formatter.__module__}.{formatter.__qualname__}"},
            "access": {"()": f"{formatter.__module__}.{formatter.__qualname__}"},
            "audit": {"format": "%(message)s"},
        },
        "filters": {"warnings": {"()": f"{__name__}.capture_warnings"}},
        "handlers": {
            "default": {
                "class": "logging.StreamHandler",
                "formatter": "default",
                "stream": stream,
                "filters": ["warnings"],
            },
            "access": {"class": "logging.StreamHandler", "formatter": "access", "stream": stream},
            "audit": {"class": "logging.StreamHandler", "formatter": "audit", "stream": stream},
        },
        "loggers": {
            "uvicorn": {"handlers": ["default"], "level": "INFO", "propagate": False},
            "uvicorn.error": {"level": "INFO"},
            "uvicorn.access": {"handlers": [], "level": "WARNING", "propagate": False},
            "gatehouse": {"handlers": ["default"], "level": "INFO", "propagate": False},
            ACCESS_LOGGER: {
                "handlers": ["access"],
                "level": "INFO" if access_log else "WARNING",
                "propagate": False,
            },
            AUDIT_LOGGER: {"handlers": ["audit"], "level": "INFO", "propagate": False},
        },
        "root": {"handlers": ["default"], "level": "WARNING"},
    }
