"""Fixtures of the verifier tests: a client over the real app that counts its requests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI


class Counted:
    """An AsyncClient over the real Gatehouse app that records the path of every request."""

    def __init__(self, app: FastAPI) -> None:
        self.paths: list[str] = []
        self.client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://testserver",
            event_hooks={"request": [self._count]},
        )

    async def _count(self, request: httpx.Request) -> None:
        self.paths.append(request.url.path)


@pytest.fixture
async def counted(app: FastAPI) -> AsyncIterator[Counted]:
    counter = Counted(app)
    async with counter.client:
        yield counter
