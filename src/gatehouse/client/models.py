"""What the server answers, as frozen dataclasses with the server's own field names.

Each `from_json` takes one decoded JSON object of the server's answer and raises
`ValueError` (or `KeyError`/`TypeError`) on a wrong shape; `_protocol.parse` turns that into
an `ApiError`, so nothing here knows about HTTP.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID


def _str(body: dict[str, Any], name: str) -> str:
    value = body[name]
    if not isinstance(value, str):
        raise TypeError(f"{name} is not a string")
    return value


def _opt_str(body: dict[str, Any], name: str) -> str | None:
    value = body.get(name)
    if value is not None and not isinstance(value, str):
        raise TypeError(f"{name} is not a string")
    return value


def _int(body: dict[str, Any], name: str) -> int:
    value = body[name]
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{name} is not an integer")
    return value


def _bool(body: dict[str, Any], name: str) -> bool:
    value = body[name]
    if not isinstance(value, bool):
        raise TypeError(f"{name} is not a boolean")
    return value


def _instant(body: dict[str, Any], name: str) -> datetime:
    return datetime.fromisoformat(_str(body, name))


@dataclass(frozen=True, slots=True)
class TokenPair:
    """A login's or refresh's answer: `POST /auth/login`, `POST /auth/refresh`."""

    access_token: str
    token_type: str
    expires_in: int
    refresh_token: str
    session_id: UUID

    def __repr__(self) -> str:  # tokens never reach a log line through repr
        return f"TokenPair(session_id={self.session_id!s}, expires_in={self.expires_in})"

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> TokenPair:
        return cls(
            access_token=_str(body, "access_token"),
            token_type=_str(body, "token_type"),
            expires_in=_int(body, "expires_in"),
            refresh_token=_str(body, "refresh_token"),
            session_id=UUID(_str(body, "session_id")),
        )


@dataclass(frozen=True, slots=True)
class ClientToken:
    """The client-credentials answer (`POST /oauth/token`): no refresh token, no session."""

    access_token: str
    token_type: str
    expires_in: int
    scope: str

    def __repr__(self) -> str:
        return f"ClientToken(scope={self.scope!r}, expires_in={self.expires_in})"

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> ClientToken:
        return cls(
            access_token=_str(body, "access_token"),
            token_type=_str(body, "token_type"),
            expires_in=_int(body, "expires_in"),
            scope=_str(body, "scope"),
        )


@dataclass(frozen=True, slots=True)
class User:
    """A user record (`GET /users/me`, `POST /auth/register`)."""

    id: UUID
    username: str
    email: str | None
    roles: tuple[str, ...]
    is_active: bool
    service_account: bool
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> User:
        roles = body["roles"]
        if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
            raise TypeError("roles is not a list of strings")
        return cls(
            id=UUID(_str(body, "id")),
            username=_str(body, "username"),
            email=_opt_str(body, "email"),
            roles=tuple(roles),
            is_active=_bool(body, "is_active"),
            service_account=_bool(body, "service_account"),
            created_at=_instant(body, "created_at"),
            updated_at=_instant(body, "updated_at"),
        )


@dataclass(frozen=True, slots=True)
class SessionInfo:
    """One live session of the caller (`GET /users/me/sessions`)."""

    id: UUID
    device_name: str | None
    ip_address: str | None
    user_agent: str | None
    created_at: datetime
    last_used_at: datetime
    expires_at: datetime
    current: bool

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> SessionInfo:
        return cls(
            id=UUID(_str(body, "id")),
            device_name=_opt_str(body, "device_name"),
            ip_address=_opt_str(body, "ip_address"),
            user_agent=_opt_str(body, "user_agent"),
            created_at=_instant(body, "created_at"),
            last_used_at=_instant(body, "last_used_at"),
            expires_at=_instant(body, "expires_at"),
            current=_bool(body, "current"),
        )
