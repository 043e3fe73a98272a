"""The client address: the socket peer, unless that peer is a proxy we were told to trust.

`client_address` is the one place that decides it. `ClientAddress` (pure ASGI, outermost
but for the security headers) writes its answer into `scope["client"]`, so everything
downstream reads one value: the session list (`deps.client_info`), the access log (uvicorn
formats `scope["client"]` when the response starts), and later rate limits and the audit
trail. `gatehouse serve` turns uvicorn's own proxy-header handling off, so nothing else
ever reads `X-Forwarded-For`.

The rule (`GATEHOUSE_TRUSTED_PROXIES`, default empty: no peer is trusted, loopback
included):

1. The peer is not a trusted proxy: the client is the peer. Forwarding headers are ignored,
   whatever they say.
2. The peer is trusted: walk `X-Forwarded-For` (or, when absent, the `for=` parameters of
   RFC 7239 `Forwarded`) from the right, skipping trusted proxies; the first untrusted
   address is the client. Entries further left were written by the client itself and are
   never read. When every entry is trusted, the left-most is the client.
3. An entry that must be read and is not an IP address (garbage, `unknown`, an obfuscated
   RFC 7239 identifier), or no forwarding header at all: the client is the peer.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from typing import TypeAlias

from starlette.types import ASGIApp, Receive, Scope, Send

IPAddress: TypeAlias = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork: TypeAlias = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_address(text: str) -> IPAddress | None:
    """An IP address with IPv4-mapped IPv6 folded to IPv4; None when `text` is not one."""
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _is_trusted(address: IPAddress, trusted: Sequence[IPNetwork]) -> bool:
    return any(address in network for network in trusted)


def _hop_address(entry: str) -> IPAddress | None:
    """One hop as proxies write it: `1.2.3.4`, `1.2.3.4:80`, `2001:db8::1`, `[2001:db8::1]:80`."""
    entry = entry.strip()
    if entry.startswith("["):
        host, bracket, _ = entry[1:].partition("]")
        return parse_address(host) if bracket else None
    if entry.count(":") == 1:
        entry = entry.partition(":")[0]
    return parse_address(entry)


def _split_outside_quotes(text: str, separator: str) -> list[str]:
    parts: list[str] = []
    current: list[str] = []
    quoted = escaped = False
    for char in text:
        if escaped:
            escaped = False
        elif char == "\\" and quoted:
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif char == separator and not quoted:
            parts.append("".join(current))
            current = []
            continue
        current.append(char)
    parts.append("".join(current))
    return parts


def _forwarded_for(value: str) -> list[str]:
    """The `for=` value of each element of an RFC 7239 `Forwarded` field ("" when absent)."""
    hops = []
    for element in _split_outside_quotes(value, ","):
        found = ""
        for pair in _split_outside_quotes(element, ";"):
            name, _, raw = pair.partition("=")
            if name.strip().lower() == "for":
                found = raw.strip()
                if len(found) >= 2 and found[0] == found[-1] == '"':
                    found = found[1:-1].replace('\\"', '"')
        hops.append(found)
    return hops


def _hops(headers: Iterable[tuple[bytes, bytes]]) -> list[str]:
    """The forwarding chain, left (the client's claim) to right (the last proxy's)."""
    x_forwarded_for: list[str] = []
    forwarded: list[str] = []
    for name, value in headers:
        if name == b"x-forwarded-for":
            x_forwarded_for.append(value.decode("latin-1"))
        elif name == b"forwarded":
            forwarded.append(value.decode("latin-1"))
    # RFC 9110 s5.3: repeated field lines are one comma-separated list, in order.
    if x_forwarded_for:
        return ",".join(x_forwarded_for).split(",")
    if forwarded:
        return _forwarded_for(",".join(forwarded))
    return []


def client_address(
    peer: str | None, headers: Iterable[tuple[bytes, bytes]], trusted: Sequence[IPNetwork]
) -> str | None:
    """The address of the client behind `peer` (the socket's remote address), as a string.

    `headers` are the request's (lower-case name, value) pairs, as in an ASGI scope.
    """
    if peer is None or not trusted:
        return peer
    peer_address = parse_address(peer)
    if peer_address is None or not _is_trusted(peer_address, trusted):
        return peer
    hops = _hops(headers)
    client: IPAddress | None = None
    for entry in reversed(hops):
        client = _hop_address(entry)
        if client is None:
            return peer
        if not _is_trusted(client, trusted):
            return str(client)
    return str(client) if client is not None else peer


class ClientAddress:
    """Pure ASGI middleware: `scope["client"]` becomes the client address decided above."""

    def __init__(self, app: ASGIApp, *, trusted: Sequence[IPNetwork]) -> None:
        self.app = app
        self.trusted = tuple(trusted)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket") and scope.get("client"):
            peer_host = scope["client"][0]
            host = client_address(peer_host, scope["headers"], self.trusted)
            if host != peer_host:
                # The port belonged to the proxy's connection; it says nothing of the client.
                scope["client"] = (host, 0)
        await self.app(scope, receive, send)
