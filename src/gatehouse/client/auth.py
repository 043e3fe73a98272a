"""`httpx.Auth` for calls to other services with a Gatehouse login: `Client.auth`.

    with Client("https://auth.example.com", store=FileTokenStore(path)) as gatehouse:
        httpx.get("https://api.example.com/reports", auth=gatehouse.auth)

Each request gets `Authorization: Bearer <access token>`, renewed first when it expires
within the client's margin. A 401 answer renews the token once (unless a concurrent call
already did) and sends the request again; a second 401 is returned to the caller as it is.
Renewal goes to Gatehouse through the owning client and is shared by concurrent callers
(`_keeper.py`). `TokenAuth` serves `httpx.Client`, `AsyncTokenAuth` `httpx.AsyncClient`.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Generator

import httpx

from gatehouse.client._keeper import AsyncTokenKeeper, TokenKeeper


def _bearer(request: httpx.Request, token: str) -> None:
    request.headers["Authorization"] = f"Bearer {token}"


class TokenAuth(httpx.Auth):
    """The sync client's bearer auth (for `httpx.Client` and the sync `Client` itself)."""

    # A request retried after a 401 is sent again whole, so httpx must read its body first.
    requires_request_body = True

    def __init__(self, keeper: TokenKeeper) -> None:
        self._keeper = keeper

    def sync_auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response]:
        token = self._keeper.access_token()
        _bearer(request, token)
        response = yield request
        if response.status_code == 401:
            # One retry with a renewed token; `stale` makes callers that raced here share
            # one refresh: only the first renews, the others find the new token stored.
            _bearer(request, self._keeper.access_token(stale=token))
            yield request

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        raise RuntimeError("Client.auth is for httpx.Client; use AsyncClient.auth with asyncio")
        yield request  # pragma: no cover - makes this an async generator


class AsyncTokenAuth(httpx.Auth):
    """The async client's bearer auth (for `httpx.AsyncClient` and `AsyncClient` itself)."""

    requires_request_body = True

    def __init__(self, keeper: AsyncTokenKeeper) -> None:
        self._keeper = keeper

    def sync_auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response]:
        raise RuntimeError("AsyncClient.auth is for httpx.AsyncClient; use Client.auth")
        yield request  # pragma: no cover - makes this a generator

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        token = await self._keeper.access_token()
        _bearer(request, token)
        response = yield request
        if response.status_code == 401:
            _bearer(request, await self._keeper.access_token(stale=token))
            yield request
