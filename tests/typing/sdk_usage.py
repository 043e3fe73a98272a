"""How a user's code types against the SDK's public surface: `scripts/check` runs
`mypy --strict` over this file, so an annotation that breaks a user's type check breaks
ours. It is never run."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import httpx
from fastapi import Depends, FastAPI
from flask import Flask, g

from gatehouse.client import (
    ApiError,
    AsyncClient,
    AuthError,
    Client,
    FileTokenStore,
    InvalidCredentials,
    LicenseClaims,
    RateLimited,
    ServerUnavailable,
    SessionRevoked,
    TokenPair,
    User,
    check_license,
)
from gatehouse.verifier import (
    AccessTokenClaims,
    IntrospectionVerifier,
    InvalidTokenError,
    TokenVerifier,
)
from gatehouse.verifier.fastapi import Authenticated, require_roles, require_scopes
from gatehouse.verifier.flask import require_token


def log_in(base_url: str, password: str) -> User:
    with Client(base_url, store=FileTokenStore(Path("tokens.json"))) as client:
        pair: TokenPair = client.login("alice", password, device_name="laptop")
        assert pair.session_id
        with httpx.Client(auth=client.auth) as http:
            http.get("https://notes.example.com/notes")
        return client.me()


async def log_in_async(base_url: str, password: str) -> list[str]:
    async with AsyncClient(base_url) as client:
        await client.login("alice", password)
        return [s.device_name or "" for s in await client.sessions()]


def failures(client: Client) -> str:  # noqa: PLR0911 - one return per error class, on purpose
    try:
        client.refresh()
    except InvalidCredentials as exc:
        return exc.detail
    except SessionRevoked:
        return "log in again"
    except RateLimited as exc:
        return f"wait {exc.retry_after}"
    except ServerUnavailable:
        return "later"
    except ApiError as exc:
        return f"{exc.status} {exc.code}"
    except AuthError:
        return "other"
    return "ok"


def licensed(url: str) -> LicenseClaims:
    return check_license(url, app_id="com.example.app", cache_dir=Path("cache"))


verifier = TokenVerifier("https://auth.example.com", "notes")
introspection = IntrospectionVerifier(
    "https://auth.example.com/oauth/introspect", api_key="ghk_x_y", cache_ttl=5.0
)


def roles_of(token: str) -> frozenset[str]:
    try:
        claims: AccessTokenClaims = verifier.verify(token)
    except InvalidTokenError:
        return frozenset()
    return claims.roles | claims.scopes


async def subject_of(token: str) -> str:
    return (await verifier.averify(token)).subject


api = FastAPI()


@api.get("/notes")
def notes(claims: Annotated[AccessTokenClaims, Depends(Authenticated(verifier))]) -> str:
    return claims.subject


@api.get("/admin")
def admin(claims: Annotated[AccessTokenClaims, Depends(require_roles(verifier, "admin"))]) -> str:
    return claims.subject


@api.get("/scoped")
def scoped(claims: Annotated[AccessTokenClaims, Depends(require_scopes(verifier, "read"))]) -> str:
    return claims.subject


web = Flask(__name__)


@web.get("/notes")
@require_token(verifier, roles=("user",))
def flask_notes() -> str:
    claims: AccessTokenClaims = g.gatehouse_claims
    return claims.subject


if __name__ == "__main__":  # pragma: no cover - type-checked, never run
    asyncio.run(log_in_async("http://127.0.0.1:8000", "pw"))
