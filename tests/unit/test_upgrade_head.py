"""The request head that GatehouseHttpProtocol parses again when it declines an upgrade offer."""

from __future__ import annotations

from gatehouse.server.http.protocol import head_without_upgrade

OFFER = [(b"upgrade", b"h2c"), (b"http2-settings", b"AAMAAABkAAQCAAAAAAIAAAAA")]


def test_the_offer_goes_and_everything_else_stays_in_order() -> None:
    """Upgrade, HTTP2-Settings and their Connection tokens go; other headers and tokens stay."""
    headers = [
        (b"host", b"a"),
        (b"connection", b"keep-alive, Upgrade, HTTP2-Settings"),
        *OFFER,
        (b"content-length", b"3"),
    ]
    head = head_without_upgrade(b"POST", b"/oauth/token?x=1", "1.1", headers)
    assert head == (
        b"POST /oauth/token?x=1 HTTP/1.1\r\nhost: a\r\nconnection: keep-alive\r\n"
        b"content-length: 3\r\n\r\n"
    )


def test_a_connection_header_of_only_offer_tokens_is_dropped() -> None:
    """`Connection: Upgrade, HTTP2-Settings` leaves nothing, so the header goes entirely."""
    headers = [(b"connection", b"Upgrade, HTTP2-Settings"), *OFFER]
    assert head_without_upgrade(b"GET", b"/", "1.0", headers) == b"GET / HTTP/1.0\r\n\r\n"


def test_connect_and_malformed_upgrade_values_cannot_be_served() -> None:
    """CONNECT is not a request for one of our resources; an Upgrade value must list protocols
    (empty list elements are allowed, RFC 9110 s5.6.1.2)."""
    upgrade = [(b"connection", b"upgrade")]
    assert head_without_upgrade(b"CONNECT", b"example.com:443", "1.1", []) is None
    for bad in (b"", b" , ", b"h2c two", b"h2c/", b"h\x01c"):
        assert head_without_upgrade(b"GET", b"/", "1.1", [*upgrade, (b"upgrade", bad)]) is None
    for good in (b"h2c", b"HTTP/2.0, SHTTP/1.3", b"websocket,", b"a/b , c"):
        assert head_without_upgrade(b"GET", b"/", "1.1", [*upgrade, (b"upgrade", good)])
