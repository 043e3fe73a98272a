"""Completing and cleaning an event before it is stored or logged.

Services hand the recorder events that may leave out the time and the request's origin;
`complete` fills them in (the recorder's clock, `server/context.py`) and makes every
string safe to store, show and log:

- user-controlled text (the user agent above all, but also names in `detail`) loses its
  control characters (C0, DEL, C1), the Unicode line and paragraph separators and the
  bidirectional overrides (which can make a log line or a table cell read as something it
  is not), and is cut to a fixed length that fits its column;
- `detail` keeps at most 32 keys of lowercase identifiers, each value a str, int, bool or
  None (anything else is stored as its cleaned `str`), strings cut at 256 characters.

Quotes and backslashes are kept as they are: storage binds parameters and every output is
JSON, which escapes them. Nothing here can make an event fail to record.
"""

from __future__ import annotations

import logging
import re
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from gatehouse.server.audit.models import EVENT_TYPES, Actor, AuditEvent, Detail, Subject
from gatehouse.server.context import RequestContext

log = logging.getLogger("gatehouse")

# Column widths of storage's `audit_events` table.
TYPE_MAX = 64
KIND_MAX = 16
ACTOR_ID_MAX = 64
SUBJECT_ID_MAX = 320
IP_MAX = 45
USER_AGENT_MAX = 512
REQUEST_ID_MAX = 64
DETAIL_VALUE_MAX = 256
DETAIL_KEYS_MAX = 32

_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_DETAIL_KEY = re.compile(r"[a-z][a-z0-9_]{0,63}")
_warned_types: set[str] = set()


def clean_text(value: str, limit: int) -> str:
    """`value` without control, separator or bidi-override characters, cut at `limit`."""
    return _UNSAFE.sub("", value)[:limit]


def _optional(value: str | None, limit: int) -> str | None:
    if value is None:
        return None
    cleaned = clean_text(value, limit)
    return cleaned or None


def clean_detail(detail: Detail) -> dict[str, str | int | bool | None]:
    cleaned: dict[str, str | int | bool | None] = {}
    for key, value in detail.items():
        if len(cleaned) == DETAIL_KEYS_MAX:
            break
        if not isinstance(key, str) or _DETAIL_KEY.fullmatch(key) is None:
            continue
        if value is None or isinstance(value, bool | int):
            cleaned[key] = value
        elif isinstance(value, str):
            cleaned[key] = clean_text(value, DETAIL_VALUE_MAX)
        else:  # a UUID, an enum: stored as text, never as an object
            cleaned[key] = clean_text(str(value), DETAIL_VALUE_MAX)
    return cleaned


def complete(event: AuditEvent, *, now: datetime, context: RequestContext | None) -> AuditEvent:
    """The event as it is stored: time, origin and request id filled in where unset (the
    actor's own `ip` first, then the event's, then the request's), every string cleaned."""
    if event.type not in EVENT_TYPES and event.type not in _warned_types:
        _warned_types.add(event.type)
        log.warning("audit event of an undocumented type: %s", clean_text(event.type, TYPE_MAX))
    ip = event.actor.ip or event.ip or (context.ip if context else None)
    agent = event.user_agent if event.user_agent is not None else (context and context.user_agent)
    request_id = event.request_id or (context.request_id if context else None)
    subject = event.subject
    return replace(
        event,
        type=clean_text(event.type, TYPE_MAX),
        actor=Actor(
            kind=event.actor.kind,
            id=_optional(event.actor.id, ACTOR_ID_MAX),
        ),
        subject=(
            Subject(clean_text(subject.kind, KIND_MAX), clean_text(subject.id, SUBJECT_ID_MAX))
            if subject is not None
            else None
        ),
        detail=clean_detail(event.detail),
        at=event.at or now,
        ip=_optional(ip, IP_MAX),
        user_agent=_optional(agent or None, USER_AGENT_MAX),
        request_id=_optional(request_id, REQUEST_ID_MAX),
    )


def rfc3339(at: datetime) -> str:
    """A UTC instant as RFC 3339 with `Z` (microseconds kept)."""
    return at.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def event_document(event_id: UUID, event: AuditEvent) -> dict[str, Any]:
    """An event as JSON shows it: the log line and the API's item have this shape."""
    assert event.at is not None  # noqa: S101 - completed events have their time
    return {
        "id": str(event_id),
        "time": rfc3339(event.at),
        "type": event.type,
        "actor": {"kind": event.actor.kind, "id": event.actor.id},
        "subject": (
            {"kind": event.subject.kind, "id": event.subject.id} if event.subject else None
        ),
        "ip": event.ip,
        "user_agent": event.user_agent,
        "outcome": event.outcome,
        "request_id": event.request_id,
        "detail": dict(event.detail),
    }
