"""The response bodies of `GET /admin/audit` (pydantic models).

An item has the shape of the JSON line each event is also logged as (`audit/clean.py`):
`time` is RFC 3339 in UTC with `Z`, `subject` may be null, `detail` holds only ids, reason
codes, counts and flags.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

from gatehouse.server.audit.clean import rfc3339
from gatehouse.server.audit.repository import StoredEvent


class ActorOut(BaseModel):
    kind: Literal["user", "device", "cli", "anonymous", "system"]
    id: str | None


class SubjectOut(BaseModel):
    kind: str
    id: str


class AuditEventOut(BaseModel):
    id: str
    time: str
    type: str
    actor: ActorOut
    subject: SubjectOut | None
    ip: str | None
    user_agent: str | None
    outcome: Literal["success", "failure"]
    request_id: str | None
    detail: dict[str, str | int | bool | None]

    @classmethod
    def of(cls, stored: StoredEvent) -> AuditEventOut:
        event = stored.event
        return cls(
            id=str(stored.id),
            time=rfc3339(stored.time),
            type=event.type,
            actor=ActorOut(kind=event.actor.kind, id=event.actor.id),
            subject=(
                SubjectOut(kind=event.subject.kind, id=event.subject.id)
                if event.subject is not None
                else None
            ),
            ip=event.ip,
            user_agent=event.user_agent,
            outcome=event.outcome,
            request_id=event.request_id,
            detail=dict(event.detail),
        )


class AuditPageOut(BaseModel):
    items: list[AuditEventOut]
    next_cursor: str | None
