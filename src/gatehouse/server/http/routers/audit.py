"""/admin/audit: the audit trail, read-only. Anonymous callers get 401, others 403.

No route edits or deletes an event: the trail only grows, and only age removes events
(`GATEHOUSE_AUDIT_RETENTION`, `gatehouse audit prune`). Other methods on /admin/audit
answer 405.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from gatehouse.server.http.audit_schemas import AuditEventOut, AuditPageOut
from gatehouse.server.http.deps import AdminUser, PageCursor, PageLimit, ServicesDep

router = APIRouter(prefix="/admin", tags=["admin"])

# Longer than any RFC 3339 instant: a longer value is a 422 before it is parsed.
Instant = Annotated[str | None, Query(max_length=40)]


@router.get("/audit")
async def list_events(
    _admin: AdminUser,
    services: ServicesDep,
    type: Annotated[str | None, Query(max_length=64)] = None,
    actor: Annotated[str | None, Query(max_length=64)] = None,
    subject: Annotated[str | None, Query(max_length=320)] = None,
    since: Instant = None,
    until: Instant = None,
    limit: PageLimit = 50,
    cursor: PageCursor = None,
) -> AuditPageOut:
    """Events newest first, in pages; pass `next_cursor` back as `cursor` for the next.

    Filters (all optional, combined): `type` one of the documented event types; `actor`
    and `subject` an id (a user's, a session's, a device's...); `since` (inclusive) and
    `until` (exclusive) RFC 3339 instants with an offset, e.g. `2026-01-31T12:00:00Z`.
    Anything malformed is 422 naming the field.
    """
    page = await services.audit.search(
        type=type,
        actor=actor,
        subject=subject,
        since=since,
        until=until,
        limit=limit,
        cursor=cursor,
    )
    return AuditPageOut(
        items=[AuditEventOut.of(item) for item in page.items], next_cursor=page.next_cursor
    )
