"""The request's id and origin, for logs and the audit trail (`server/context.py`).

`RequestContext` (pure ASGI, inside `ClientAddress`, so it reads the address that rule
chose, and outside Starlette's error handling, so a 500 carries the id too) sets
`context.current_request` for the task serving the request, and sends the id back as
`X-Request-ID` on every response.

The id is the request's own `X-Request-ID` when that is 1 to 64 characters of
`[A-Za-z0-9._:-]` (a proxy or a client correlating its calls), else a fresh random one. It is
only a correlation id: nothing trusts it.
"""

from __future__ import annotations

import re
import secrets

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gatehouse.server.context import RequestContext as Context
from gatehouse.server.context import current_request

REQUEST_ID_HEADER = b"x-request-id"
_WELL_FORMED = re.compile(rb"[A-Za-z0-9._:-]{1,64}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_AGENT_MAX = 512


def new_request_id() -> str:
    return secrets.token_hex(8)


class RequestContext:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id: str | None = None
        agent: str | None = None
        for name, value in scope["headers"]:
            if name == REQUEST_ID_HEADER and request_id is None:
                if _WELL_FORMED.fullmatch(value):
                    request_id = value.decode("ascii")
            elif name == b"user-agent" and agent is None:
                agent = _CONTROL.sub("", value.decode("latin-1"))[:_AGENT_MAX]
        request_id = request_id or new_request_id()
        client = scope.get("client")
        context = Context(request_id=request_id, ip=client[0] if client else None, user_agent=agent)
        scope["gatehouse.request_id"] = request_id
        header = (REQUEST_ID_HEADER, request_id.encode("ascii"))

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), header]
            await send(message)

        token = current_request.set(context)
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            current_request.reset(token)
