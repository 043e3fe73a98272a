"""HTTP/1.1 over a bare socket, for requests no well-behaved client library would send.

`RawConnection` writes bytes exactly as given (so a test controls every header, the framing
and how the bytes are split into packets) and reads responses one at a time, framed by
their Content-Length, so several requests can share one connection.
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass, field

TIMEOUT_SECONDS = 10.0


@dataclass
class RawResponse:
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        values = [v for k, v in self.headers if k == name.lower()]
        return ", ".join(values) if values else None


@dataclass
class RawConnection:
    sock: socket.socket
    buffer: bytes = field(default=b"")

    @classmethod
    def open(cls, port: int) -> RawConnection:
        sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT_SECONDS)
        return cls(sock)

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> RawConnection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def send(self, *parts: bytes, pause: float = 0.05) -> None:
        """Send each part as its own write, pausing between them (separate TCP segments)."""
        for index, part in enumerate(parts):
            if index:
                time.sleep(pause)
            self.sock.sendall(part)

    def _fill(self) -> bool:
        chunk = self.sock.recv(65536)
        self.buffer += chunk
        return bool(chunk)

    def response(self) -> RawResponse:
        """Read one whole response (a Content-Length body, or none for 1xx/204/304)."""
        while b"\r\n\r\n" not in self.buffer:
            if not self._fill():
                raise ConnectionError(f"closed before a response head: {self.buffer!r}")
        head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
        status_line, *lines = head.decode("latin-1").split("\r\n")
        status = int(status_line.split()[1])
        headers = [
            (name.strip().lower(), value.strip())
            for name, value in (line.split(":", 1) for line in lines)
        ]
        length = int(dict(headers).get("content-length", "0"))
        while len(self.buffer) < length:
            if not self._fill():
                raise ConnectionError("closed inside a response body")
        body, self.buffer = self.buffer[:length], self.buffer[length:]
        return RawResponse(status=status, headers=headers, body=body)

    def closed_by_server(self) -> bool:
        """True when the server has closed the connection (reads end), within the timeout."""
        try:
            while self._fill():
                pass
        except TimeoutError:
            return False
        except ConnectionResetError:
            return True
        return True


def request(
    method: str, target: str, headers: dict[str, str] | list[tuple[str, str]], body: bytes = b""
) -> bytes:
    """A request head (Host added first) followed by `body` exactly as given."""
    items = headers.items() if isinstance(headers, dict) else headers
    lines = [f"{method} {target} HTTP/1.1", "Host: 127.0.0.1", *(f"{k}: {v}" for k, v in items)]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def chunked(*pieces: bytes) -> bytes:
    """`pieces` as a chunked body, one chunk each, with the last-chunk."""
    return b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces) + b"0\r\n\r\n"
