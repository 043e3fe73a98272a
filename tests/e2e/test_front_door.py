"""The front door of a real `gatehouse serve` process, over raw sockets and real TCP.

Upgrade offers (h2c, as every JDK client sends them) are served as plain HTTP/1.1 with their
bodies whole; malformed requests get a 400 and a closed connection; every response carries
the security headers; the client address follows GATEHOUSE_TRUSTED_PROXIES.
"""

from __future__ import annotations

import json
from urllib.parse import urlencode

import pytest

from tests.e2e.harness import PASSWORD, Deployment, Server, bearer, login, register
from tests.e2e.rawhttp import RawConnection, RawResponse, chunked, request

H2C_OFFER = {
    "Connection": "Upgrade, HTTP2-Settings",
    "Upgrade": "h2c",
    "HTTP2-Settings": "AAMAAABkAAQCAAAAAAIAAAAA",
}
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
TOKEN_FORM = urlencode(
    {"grant_type": "password", "username": "alice", "password": PASSWORD}
).encode()
SECURITY_HEADERS = {
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
    "cross-origin-opener-policy": "same-origin",
    "cache-control": "no-store",
    "content-security-policy": "default-src 'none'; frame-ancestors 'none'",
}


def assert_token(response: RawResponse) -> None:
    assert response.status == 200, response.body
    assert json.loads(response.body)["token_type"] == "bearer"


def healthz() -> bytes:
    return request("GET", "/healthz", {})


def test_an_h2c_offer_with_content_length_gets_its_body_and_keeps_the_connection(
    alice_server: Server,
) -> None:
    """POST /oauth/token offering h2c with a Content-Length body answers 200 with a token pair in
    HTTP/1.1, and the same connection then serves another request."""
    headers = {**H2C_OFFER, **FORM, "Content-Length": str(len(TOKEN_FORM))}
    with RawConnection.open(alice_server.port) as conn:
        conn.send(request("POST", "/oauth/token", headers, TOKEN_FORM))
        first = conn.response()
        assert_token(first)
        assert first.header("upgrade") is None
        conn.send(healthz())
        assert conn.response().status == 200


def test_an_h2c_offer_with_a_chunked_body_split_across_packets_gets_its_body(
    alice_server: Server,
) -> None:
    """The head, then the body in two chunks sent as separate packets (as Ktor writes them):
    the body arrives whole, and a second keep-alive request on the connection works."""
    headers = {**H2C_OFFER, **FORM, "Transfer-Encoding": "chunked"}
    body = chunked(TOKEN_FORM[:17], TOKEN_FORM[17:])
    with RawConnection.open(alice_server.port) as conn:
        conn.send(request("POST", "/oauth/token", headers), body[:9], body[9:])
        assert_token(conn.response())
        conn.send(request("POST", "/oauth/token", headers, body))
        assert_token(conn.response())


def test_pipelined_requests_after_an_h2c_offer_are_each_answered_in_order(
    alice_server: Server,
) -> None:
    """An offer with a body, a plain request and another offer in one write: three answers."""
    offer = request(
        "POST", "/oauth/token", {**H2C_OFFER, **FORM, "Content-Length": str(len(TOKEN_FORM))}
    )
    with RawConnection.open(alice_server.port) as conn:
        conn.send(offer + TOKEN_FORM + healthz() + request("GET", "/readyz", H2C_OFFER))
        assert_token(conn.response())
        assert json.loads(conn.response().body) == {"status": "ok"}
        assert json.loads(conn.response().body) == {"status": "ready"}


def test_a_websocket_offer_is_served_as_a_plain_request(alice_server: Server) -> None:
    """Gatehouse serves no WebSocket: an offer of one gets the route's ordinary answer."""
    offer = {
        "Connection": "Upgrade",
        "Upgrade": "websocket",
        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
        "Sec-WebSocket-Version": "13",
    }
    with RawConnection.open(alice_server.port) as conn:
        conn.send(request("GET", "/healthz", offer))
        response = conn.response()
        assert response.status == 200
        assert json.loads(response.body) == {"status": "ok"}
        conn.send(healthz())
        assert conn.response().status == 200


@pytest.mark.parametrize(
    "raw",
    [
        # An Upgrade value that is not a list of protocol tokens.
        request("GET", "/healthz", {"Connection": "Upgrade", "Upgrade": "h2c two"}),
        # A chunk size that is not hex, after an h2c offer.
        request("POST", "/oauth/token", {**H2C_OFFER, "Transfer-Encoding": "chunked"})
        + b"zz\r\nabc\r\n0\r\n\r\n",
        # The same without an offer.
        request("POST", "/oauth/token", {"Transfer-Encoding": "chunked"}) + b"zz\r\nabc\r\n",
        # Gatehouse is no proxy.
        request("CONNECT", "example.com:443", {}),
        b"NOT HTTP AT ALL\r\n\r\n",
    ],
    ids=["bad-upgrade-value", "bad-chunk-after-offer", "bad-chunk", "connect", "garbage"],
)
def test_malformed_requests_get_400_problem_json_and_a_closed_connection(
    alice_server: Server, raw: bytes
) -> None:
    """Never a 5xx, never a hang: 400 `malformed_request` with the security headers, then the
    server closes the connection; the server goes on serving."""
    with RawConnection.open(alice_server.port) as conn:
        conn.send(raw)
        response = conn.response()
        assert response.status == 400
        assert response.header("content-type") == "application/problem+json"
        assert json.loads(response.body)["code"] == "malformed_request"
        assert response.header("connection") == "close"
        for name, value in SECURITY_HEADERS.items():
            assert response.header(name) == value, name
        assert conn.closed_by_server()
    with alice_server.client() as client:
        assert client.get("/healthz").status_code == 200


def test_security_headers_over_the_wire_on_a_sample_of_routes(alice_server: Server) -> None:
    """Through uvicorn too: 200, 401, 404, 405, 413 and the docs page carry the fixed headers
    (no HSTS: this issuer is http); API responses carry the API CSP and no-store."""
    with alice_server.client() as client:
        token = login(client, "alice")
        responses = {
            "me": client.get("/users/me", headers=bearer(token)),
            "anonymous": client.get("/users/me"),
            "missing": client.get("/nope"),
            "method": client.delete("/healthz"),
            "large": client.post("/auth/login", content=b"x" * 70_000),
            "docs": client.get("/docs"),
        }
    assert {k: r.status_code for k, r in responses.items()} == {
        "me": 200, "anonymous": 401, "missing": 404, "method": 405, "large": 413, "docs": 200,
    }  # fmt: skip
    for name, response in responses.items():
        assert "strict-transport-security" not in response.headers
        for header, value in SECURITY_HEADERS.items():
            if name == "docs" and header == "content-security-policy":
                assert "script-src 'self'" in response.headers[header]
            else:
                assert response.headers.get_list(header) == [value], (name, header)


def _login_from(server: Server, forwarded: dict[str, str]) -> str:
    """Log alice in with the given forwarding headers; the IP her session list records."""
    with server.client() as client:
        response = client.post(
            "/auth/login",
            json={"username": "alice", "password": PASSWORD},
            headers=forwarded,
        )
        assert response.status_code == 200, response.text
        pair = response.json()
        sessions = client.get("/users/me/sessions", headers=bearer(pair["access_token"]))
    (current,) = [s for s in sessions.json() if s["current"]]
    ip: str = current["ip_address"]
    return ip


def test_forged_forwarding_headers_from_an_untrusted_peer_change_nothing(
    deployment: Deployment,
) -> None:
    """By default loopback is not trusted: X-Forwarded-For and Forwarded from 127.0.0.1 are
    neither stored in the session list nor written to the access log."""
    with deployment.serve() as server:
        with server.client() as client:
            register(client, "alice")
        forged = {"X-Forwarded-For": "6.6.6.6", "Forwarded": "for=7.7.7.7"}
        assert _login_from(server, forged) == "127.0.0.1"
        log = server.log()
        logins = [e for e in server.access_lines() if e["path"] == "/auth/login"]
    assert "6.6.6.6" not in log
    assert "7.7.7.7" not in log
    assert logins
    assert {e["client_ip"] for e in logins} == {"127.0.0.1"}


def test_a_trusted_proxy_names_the_client_and_a_malformed_header_falls_back(
    deployment: Deployment,
) -> None:
    """GATEHOUSE_TRUSTED_PROXIES=127.0.0.1: the right-most untrusted X-Forwarded-For entry is
    the client, in the session list and the access log; a malformed entry means the peer."""
    with deployment.serve(env={"GATEHOUSE_TRUSTED_PROXIES": "127.0.0.1, 10.0.0.0/8"}) as server:
        with server.client() as client:
            register(client, "alice")
        chain = {"X-Forwarded-For": "6.6.6.6, 203.0.113.7, 10.1.2.3"}
        assert _login_from(server, chain) == "203.0.113.7"
        forwarded = {"Forwarded": 'for="[2001:db8::7]:443";proto=https'}
        assert _login_from(server, forwarded) == "2001:db8::7"
        assert _login_from(server, {"X-Forwarded-For": "not-an-address"}) == "127.0.0.1"
        log = server.log()
        logins = [e for e in server.access_lines() if e["path"] == "/auth/login"]
    assert {"203.0.113.7", "2001:db8::7"} <= {e["client_ip"] for e in logins}
    assert "6.6.6.6" not in log
