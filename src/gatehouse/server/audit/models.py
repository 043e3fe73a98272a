"""Audit events in the shape the audit trail stores them.

Until the audit trail has its table, `LogAuditRecorder` writes each event as one JSON line
on the `gatehouse.audit` logger; services depend only on `AuditRecorder`, so the store can
change under them. An event never holds a secret: no password, token, key or fingerprint,
only ids.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal, Protocol

Outcome = Literal["success", "failure"]

log = logging.getLogger("gatehouse.audit")


@dataclass(frozen=True, slots=True)
class Actor:
    """Who acted: a user, a device, the operator at the CLI, or an anonymous caller."""

    kind: Literal["user", "device", "cli", "anonymous", "system"]
    id: str | None = None
    ip: str | None = None

    @classmethod
    def cli(cls) -> Actor:
        return cls(kind="cli")

    @classmethod
    def system(cls) -> Actor:
        return cls(kind="system")


@dataclass(frozen=True, slots=True)
class AuditEvent:
    """One thing that happened: `action` is `<concern>.<verb>` (`device.activated`)."""

    action: str
    outcome: Outcome
    actor: Actor
    at: datetime
    target: str | None = None
    # Ids and reasons only (a failure's error code, the license id, components matched).
    details: Mapping[str, str | int | bool | None] = field(default_factory=dict)

    def as_dict(self) -> dict[str, object]:
        return {
            "action": self.action,
            "outcome": self.outcome,
            "at": self.at.isoformat(),
            "actor": {"kind": self.actor.kind, "id": self.actor.id, "ip": self.actor.ip},
            "target": self.target,
            "details": dict(self.details),
        }


class AuditRecorder(Protocol):
    def record(self, event: AuditEvent) -> None: ...


class LogAuditRecorder:
    """Each event as one JSON line on the `gatehouse.audit` logger (level INFO)."""

    def record(self, event: AuditEvent) -> None:
        if log.isEnabledFor(logging.INFO):
            log.info(
                "%s", json.dumps(event.as_dict(), separators=(",", ":")), extra={"audit": event}
            )
