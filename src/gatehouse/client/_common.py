"""What `Client` and `AsyncClient` share besides the wire rules: request bodies, the
tokens to store for an answer, and the answer to a refresh when the login was an API key."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from gatehouse.client.models import ClientToken, TokenPair
from gatehouse.client.stores import StoredTokens

DEFAULT_HEADERS = {"Accept": "application/json", "User-Agent": "gatehouse-client"}
DEFAULT_REFRESH_MARGIN = 30.0


def stored_pair(pair: TokenPair, now: float) -> StoredTokens:
    return StoredTokens(
        access_token=pair.access_token,
        refresh_token=pair.refresh_token,
        expires_at=now + pair.expires_in,
        session_id=str(pair.session_id),
    )


def stored_client_token(token: ClientToken, now: float) -> StoredTokens:
    return StoredTokens(
        access_token=token.access_token,
        refresh_token=None,
        expires_at=now + token.expires_in,
        session_id=None,
    )


def login_body(username: str, password: str, device_name: str | None) -> dict[str, Any]:
    body: dict[str, Any] = {"username": username, "password": password}
    if device_name is not None:
        body["device_name"] = device_name
    return body


def register_body(username: str, password: str, email: str | None) -> dict[str, Any]:
    body: dict[str, Any] = {"username": username, "password": password}
    if email is not None:
        body["email"] = email
    return body


def client_credentials_form(client_id: str, client_secret: str) -> dict[str, str]:
    return {
        "grant_type": "client_credentials",
        "client_id": client_id,
        "client_secret": client_secret,
    }


def is_current(session_id: UUID | str, tokens: StoredTokens | None) -> bool:
    return tokens is not None and tokens.session_id == str(session_id)
