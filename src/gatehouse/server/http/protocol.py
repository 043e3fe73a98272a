"""The HTTP/1.1 protocol `gatehouse serve` runs: uvicorn's httptools protocol, minus one fault.

Stock clients (every JDK `HttpClient`, Spring's RestClient, Ktor, `curl --http2`) offer a
cleartext HTTP/2 upgrade on ordinary requests: `Upgrade: h2c`, `Connection: Upgrade,
HTTP2-Settings`. RFC 9110 s7.8 lets a server ignore such an offer and answer in HTTP/1.1.
uvicorn's httptools protocol cannot: llhttp treats every `Connection: upgrade` request as a
switch, ends the message at its headers, and hands the body back as "upgraded" bytes that
uvicorn drops; the app runs with an empty body (uvicorn issue 2722, open upstream).

`GatehouseHttpProtocol` declines every upgrade it is not configured to accept (Gatehouse
serves no WebSocket, so that is every upgrade): when llhttp reports one, it starts no
request, rebuilds the request head without `Upgrade`, `HTTP2-Settings` and their
`Connection` tokens, and parses that head plus the bytes after it with a fresh parser. The
request then runs exactly as if the offer had never been made: its body arrives whole
(Content-Length or chunked), and the connection goes on with the next keep-alive or
pipelined request. A malformed offer, a CONNECT, or invalid framing gets a 400 and the
connection is closed. Requests without an upgrade offer take the parent's code unchanged.
"""

from __future__ import annotations

import re

import httptools
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from gatehouse.server.http.errors import problem_bytes
from gatehouse.server.http.headers import BASE_SECURITY_HEADERS

# RFC 9110 s7.8: Upgrade = #protocol; protocol = protocol-name ["/" protocol-version].
_TOKEN = rb"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
_PROTOCOL = re.compile(_TOKEN + rb"(?:/" + _TOKEN + rb")?")
# Headers that belong to the upgrade offer itself (RFC 9113 s3.2 for HTTP2-Settings).
_OFFER_HEADERS = frozenset({b"upgrade", b"http2-settings"})

_BAD_REQUEST_BODY = problem_bytes(400, "malformed_request", "The request is not valid HTTP/1.1.")


def head_without_upgrade(
    method: bytes, target: bytes, version: str, headers: list[tuple[bytes, bytes]]
) -> bytes | None:
    """The request head as it would read without its upgrade offer; None if it cannot be.

    `headers` are (lower-case name, value) as the parser delivered them. The offer's own
    headers go, and so do their tokens in `Connection`; everything else is kept in order.
    None for a CONNECT (its target is not a resource of ours) and for an `Upgrade` value
    that is not a list of protocol tokens.
    """
    if method == b"CONNECT":
        return None
    lines = [method + b" " + target + b" HTTP/" + version.encode("ascii")]
    for name, value in headers:
        if name == b"upgrade":
            if not _is_protocol_list(value):
                return None
            continue
        if name in _OFFER_HEADERS:
            continue
        if name == b"connection":
            tokens = [t.strip() for t in value.split(b",")]
            kept = [t for t in tokens if t and t.lower() not in _OFFER_HEADERS]
            if kept:
                lines.append(b"connection: " + b", ".join(kept))
            continue
        lines.append(name + b": " + value)
    return b"\r\n".join(lines) + b"\r\n\r\n"


def _is_protocol_list(value: bytes) -> bool:
    # RFC 9110 s5.6.1.2: a recipient accepts empty list elements, but not an empty list.
    elements = [e.strip(b" \t") for e in value.split(b",")]
    present = [e for e in elements if e]
    return bool(present) and all(_PROTOCOL.fullmatch(e) for e in present)


class GatehouseHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol that serves declined upgrade offers as plain HTTP/1.1."""

    _declined_upgrade = False

    def on_headers_complete(self) -> None:
        if self.parser.should_upgrade() and not self._should_upgrade():
            # Start nothing: llhttp has already dropped this request's body. The head is
            # parsed again, without the offer, once feed_data reports where the body begins.
            self._declined_upgrade = True
            return
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        if self._declined_upgrade:
            return
        super().on_message_complete()

    def data_received(self, data: bytes) -> None:
        self._unset_keepalive_if_required()
        while True:
            try:
                self.parser.feed_data(data)
            except httptools.HttpParserError:
                self.logger.warning("Invalid HTTP request received.")
                self.send_400_response("Invalid HTTP request received.")
                return
            except httptools.HttpParserUpgrade as upgrade:
                if self._should_upgrade():
                    self.handle_websocket_upgrade()
                    return
                rest = data[upgrade.args[0] :]
                head = self._declined_head()
                if head is None:
                    self.logger.warning("Invalid upgrade request received.")
                    self.send_400_response("Invalid upgrade request received.")
                    return
                # A fresh parser reads the request again as plain HTTP/1.1, then whatever
                # follows it on the connection.
                self.parser = httptools.HttpRequestParser(self)
                self.parser.set_dangerous_leniencies(lenient_data_after_close=True)
                data = head + rest
                continue
            return

    def _declined_head(self) -> bytes | None:
        if not self._declined_upgrade:
            return None
        self._declined_upgrade = False
        return head_without_upgrade(
            self.parser.get_method(), self.url, self.parser.get_http_version(), self.headers
        )

    def send_400_response(self, msg: str) -> None:
        """A 400 problem+json with the security headers; the connection is closed."""
        del msg  # uvicorn's text is for its log; the client gets our stable body
        head = [b"HTTP/1.1 400 Bad Request\r\n"]
        for name, value in (*self.server_state.default_headers, *BASE_SECURITY_HEADERS):
            head += [name, b": ", value, b"\r\n"]
        head += [
            b"content-type: application/problem+json\r\n",
            b"content-length: " + str(len(_BAD_REQUEST_BODY)).encode("ascii") + b"\r\n",
            b"connection: close\r\n\r\n",
            _BAD_REQUEST_BODY,
        ]
        self.transport.write(b"".join(head))
        self.transport.close()
