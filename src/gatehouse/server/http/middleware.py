"""ASGI middleware: the request body size limit, and an API key taken out of the URL.

A declared Content-Length over the limit is refused with 413 before the app reads a byte; a
body without a declared length is read up to the limit and refused with 413 past it. Pure
ASGI, so a request with a declared length costs one header scan.

`QueryApiKey` (only with `GATEHOUSE_API_KEY_IN_QUERY=true`) moves `?api_key=` out of the
query string into `scope["gatehouse.api_key"]` before anything else sees the request, so
the access log (which uvicorn writes from the same scope) never shows the key.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gatehouse.server.http.errors import problem_bytes

_TOO_LARGE = problem_bytes(413, "payload_too_large", "The request body is too large.")
_BAD_LENGTH = problem_bytes(400, "malformed_request", "The Content-Length header is not a number.")


class BodySizeLimit:
    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        chunked = False
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    await _reject(send, 400)
                    return
                if declared > self.max_bytes:
                    await _reject(send, 413)
                    return
            elif name == b"transfer-encoding":
                chunked = True
        if chunked:
            # A body without a declared length is read up to the limit first, then
            # replayed to the app; the server holds a declared length to its word.
            chunks: list[bytes] = []
            size = 0
            while True:
                message = await receive()
                if message["type"] != "http.request":
                    return
                chunk = message.get("body", b"")
                size += len(chunk)
                if size > self.max_bytes:
                    await _reject(send, 413)
                    return
                chunks.append(chunk)
                if not message.get("more_body", False):
                    break
            replayed = False

            async def replay() -> Message:
                nonlocal replayed
                if not replayed:
                    replayed = True
                    return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
                return await receive()

            await self.app(scope, replay, send)
            return
        await self.app(scope, receive, send)


async def _reject(send: Send, status: int) -> None:
    body = _TOO_LARGE if status == 413 else _BAD_LENGTH
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/problem+json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


API_KEY_SCOPE = "gatehouse.api_key"


class QueryApiKey:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        query = scope.get("query_string", b"") if scope["type"] == "http" else b""
        if b"api_key" in query:
            pairs = parse_qsl(query.decode("latin-1"), keep_blank_values=True)
            keys = [v for k, v in pairs if k == "api_key"]
            if keys:
                scope[API_KEY_SCOPE] = keys[0]
                rest = [(k, v) for k, v in pairs if k != "api_key"]
                scope["query_string"] = urlencode(rest).encode("latin-1")
        await self.app(scope, receive, send)
