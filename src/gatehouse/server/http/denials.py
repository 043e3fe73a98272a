"""Refusals the audit trail records at the HTTP edge.

Every 401 and 403 answered under `/admin/` is an `admin.access_denied` event, and every
one answered by `/oauth/introspect` an `introspection.denied` event, whichever layer
refused (no credential, a bad one, a CSRF failure, a caller without the role or scope).
The error handler (`http/errors.py`) calls `record_denial` for each error answer; the
dependency or route that knew the caller before refusing it names them with
`note_caller`, so the event's actor is that user rather than an anonymous caller.

Each event carries the route's template (never the raw path, which the caller chose), the
method and the error's code; no credential.
"""

from __future__ import annotations

from fastapi import Request

from gatehouse.server.audit.models import Actor, AuditEvent
from gatehouse.server.sessions.models import Principal
from gatehouse.server.wiring import Services

_ADMIN_PREFIX = "/admin/"
_INTROSPECT = "/oauth/introspect"
_CALLER = "gatehouse_audit_actor"


def note_caller(request: Request, principal: Principal) -> None:
    """Remember who is calling, for a denial recorded later in this request."""
    setattr(request.state, _CALLER, Actor.user(principal.user.id))


def _denial_type(path: str) -> str | None:
    if path.startswith(_ADMIN_PREFIX) or path == _ADMIN_PREFIX.rstrip("/"):
        return "admin.access_denied"
    if path == _INTROSPECT:
        return "introspection.denied"
    return None


def record_denial(request: Request, status: int, code: str) -> None:
    """Record a 401 or 403 answer of an admin route or of introspection; others are not
    denials this trail lists (their own services record what they refuse)."""
    if status not in (401, 403):
        return
    event_type = _denial_type(request.url.path)
    if event_type is None:
        return
    services: Services = request.app.state.services
    route = request.scope.get("route")
    template = getattr(route, "path", None)
    actor = getattr(request.state, _CALLER, None)
    services.audit_recorder.record(
        AuditEvent(
            type=event_type,
            outcome="failure",
            actor=actor if isinstance(actor, Actor) else Actor.anonymous(),
            detail={
                "reason": code,
                "status": status,
                "method": request.method,
                "route": template if isinstance(template, str) else None,
            },
        )
    )
