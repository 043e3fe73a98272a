"""Audit events and the recorder services hand them to.

An event never holds a secret: no password, token, key or fingerprint, only ids, names and
reasons. Services depend only on `AuditRecorder`; `storage/audit.py` stores the events.

Two ways to record:

- `with recorder.staged(event): await repository.write(...)`: for the event of a state
  change. The event is inserted by the next write transaction this task commits inside the
  block that changes a row, in that transaction, so the change and its record commit or
  roll back together. If the block raises, the event is dropped (nothing changed); if it
  ends without a write having taken the event, it is recorded as by `record`. A service
  whose write may turn out to change nothing (revoking what is already revoked) raises
  inside the block when it does, so that nothing is recorded.
- `recorder.record(event)`: everything else (failures, uses): queued in memory and written
  in batches within a second, never on the request's path.

`ip`, `user_agent` and `request_id` are filled from the request being served
(`server/context.py`) when the event leaves them unset; `at` from the recorder's clock; and
every string is cleaned (`audit/clean.py`). The README's "Audit trail" lists every type
with what its actor, subject and detail are.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal, Protocol
from uuid import UUID

Outcome = Literal["success", "failure"]
Detail = Mapping[str, str | int | bool | None]

# Every event type the server records (README: "Audit trail").
EVENT_TYPES = frozenset(
    {
        "user.registered",
        "login.succeeded",
        "login.failed",
        "account.locked",
        "token.refreshed",
        "refresh_token.reused",
        "session.revoked",
        "logout",
        "logout_all",
        "password.changed",
        "password.reset_requested",
        "password.reset",
        "email.verification_requested",
        "email.verified",
        "email.changed",
        "api_key.created",
        "api_key.used",
        "api_key.revoked",
        "client_credentials.issued",
        "introspection.denied",
        "user.created",
        "user.roles_changed",
        "user.deactivated",
        "user.activated",
        "user.deleted",
        "device.registered",
        "device.updated",
        "device.activated",
        "device.deactivated",
        "device.deactivate_failed",
        "device.heartbeat_failed",
        "device.verify_failed",
        "device.activate_failed",
        "device.matched_tolerant",
        "device.suspended",
        "device.revoked",
        "device.reinstated",
        "device.deleted",
        "device.culled",
        "license.created",
        "license.updated",
        "license.deleted",
        "admin.access_denied",
    }
)


@dataclass(frozen=True, slots=True)
class Actor:
    """Who acted: a user, a device, the operator at the CLI, an anonymous caller, or the
    server itself. `ip` overrides the request's address (rarely needed)."""

    kind: Literal["user", "device", "cli", "anonymous", "system"]
    id: str | None = None
    ip: str | None = None

    @classmethod
    def user(cls, user_id: UUID | str) -> Actor:
        return cls(kind="user", id=str(user_id))

    @classmethod
    def cli(cls) -> Actor:
        return cls(kind="cli")

    @classmethod
    def system(cls) -> Actor:
        return cls(kind="system")

    @classmethod
    def anonymous(cls) -> Actor:
        return cls(kind="anonymous")


@dataclass(frozen=True, slots=True)
class Subject:
    """What an event is about: `kind` is user, username, session, api_key, device or
    license; `id` its id (a username's canonical form for `username`)."""

    kind: str
    id: str


@dataclass(frozen=True, slots=True)
class AuditEvent:
    type: str
    outcome: Outcome
    actor: Actor
    subject: Subject | None = None
    # Ids and reasons only (a failure's error code, the license id, components matched).
    detail: Detail = field(default_factory=dict)
    at: datetime | None = None
    ip: str | None = None
    user_agent: str | None = None
    request_id: str | None = None


class AuditRecorder(Protocol):
    def record(self, event: AuditEvent) -> None:
        """Queue an event; it reaches storage within about a second."""
        ...

    def staged(self, *events: AuditEvent) -> AbstractContextManager[None]:
        """Write `events` in the transaction of the next write made inside the block."""
        ...
