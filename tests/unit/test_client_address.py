"""The client address rules of GATEHOUSE_TRUSTED_PROXIES (http/client_address.py)."""

from __future__ import annotations

import ipaddress

import pytest
from pydantic import ValidationError

from gatehouse.server.config import Settings
from gatehouse.server.http.client_address import IPNetwork, client_address

PROXY = "10.0.0.5"
TRUSTED: tuple[IPNetwork, ...] = (
    ipaddress.ip_network("10.0.0.0/24"),
    ipaddress.ip_network("2001:db8:ffff::/48"),
)


def xff(*values: str) -> list[tuple[bytes, bytes]]:
    return [(b"x-forwarded-for", v.encode()) for v in values]


def fwd(*values: str) -> list[tuple[bytes, bytes]]:
    return [(b"forwarded", v.encode()) for v in values]


def test_an_untrusted_peer_is_the_client_whatever_it_forwards() -> None:
    """Forwarding headers from a peer outside the trusted list are ignored."""
    assert client_address("198.51.100.9", xff("6.6.6.6"), TRUSTED) == "198.51.100.9"
    assert client_address("198.51.100.9", fwd("for=6.6.6.6"), TRUSTED) == "198.51.100.9"


def test_with_no_trusted_proxies_loopback_is_not_trusted() -> None:
    """The default (no trusted proxies) keeps the socket peer, loopback included."""
    assert client_address("127.0.0.1", xff("6.6.6.6"), ()) == "127.0.0.1"


def test_a_trusted_peer_names_the_right_most_untrusted_hop() -> None:
    """Entries left of the first untrusted address from the right are the client's own claims."""
    headers = xff("6.6.6.6, 203.0.113.7, 10.0.0.9")
    assert client_address(PROXY, headers, TRUSTED) == "203.0.113.7"


def test_repeated_header_lines_form_one_list_in_order() -> None:
    """Two X-Forwarded-For lines read as one comma-separated list (RFC 9110 s5.3)."""
    assert client_address(PROXY, xff("6.6.6.6", "203.0.113.7"), TRUSTED) == "203.0.113.7"


def test_when_every_hop_is_trusted_the_left_most_is_the_client() -> None:
    """A chain of trusted proxies only: the first one is where the request entered."""
    assert client_address(PROXY, xff("10.0.0.7, 10.0.0.8"), TRUSTED) == "10.0.0.7"


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        ("203.0.113.7:4711", "203.0.113.7"),
        ("2001:db8::1", "2001:db8::1"),
        ("[2001:db8::1]:4711", "2001:db8::1"),
        ("::ffff:203.0.113.7", "203.0.113.7"),
    ],
)
def test_hops_with_ports_brackets_and_mapped_addresses(entry: str, expected: str) -> None:
    """Ports are dropped, IPv6 may be bracketed, IPv4-mapped IPv6 reads as IPv4."""
    assert client_address(PROXY, xff(entry), TRUSTED) == expected


@pytest.mark.parametrize("value", ["garbage", "203.0.113.7,", "unknown", "", "1.2.3.4.5"])
def test_a_malformed_hop_from_a_trusted_proxy_falls_back_to_the_peer(value: str) -> None:
    """An entry that must be read and is no address leaves the peer as the client."""
    assert client_address(PROXY, xff(value), TRUSTED) == PROXY


def test_garbage_left_of_the_client_is_never_read() -> None:
    """The client cannot make itself anonymous by prefixing junk: the proxy's entry decides."""
    assert client_address(PROXY, xff("not-an-ip, 203.0.113.7"), TRUSTED) == "203.0.113.7"


def test_a_trusted_peer_without_forwarding_headers_is_the_client() -> None:
    """No header at all: the peer."""
    assert client_address(PROXY, [(b"host", b"x")], TRUSTED) == PROXY


def test_forwarded_is_read_when_x_forwarded_for_is_absent() -> None:
    """RFC 7239: `for=` of each element, quoted IPv6 with port, other parameters ignored."""
    headers = fwd('for=6.6.6.6, for="[2001:db8::17]:4711";proto=https;by=10.0.0.5')
    assert client_address(PROXY, headers, TRUSTED) == "2001:db8::17"
    assert client_address(PROXY, fwd("proto=https;For=203.0.113.7"), TRUSTED) == "203.0.113.7"


@pytest.mark.parametrize("value", ["for=unknown", "for=_hidden", "proto=https", 'for="oops'])
def test_a_forwarded_element_without_an_address_falls_back_to_the_peer(value: str) -> None:
    """An obfuscated, unknown or missing `for=` from a trusted proxy leaves the peer."""
    assert client_address(PROXY, fwd(value), TRUSTED) == PROXY


def test_x_forwarded_for_wins_over_forwarded() -> None:
    """With both present, X-Forwarded-For is read (the README tells proxies to set it)."""
    headers = [*fwd("for=6.6.6.6"), *xff("203.0.113.7")]
    assert client_address(PROXY, headers, TRUSTED) == "203.0.113.7"


def test_a_trusted_ipv6_peer_and_an_ipv4_mapped_peer() -> None:
    """Trust is checked on the peer's address as IPv6 or, when mapped, as IPv4."""
    assert client_address("2001:db8:ffff::1", xff("203.0.113.7"), TRUSTED) == "203.0.113.7"
    assert client_address("::ffff:10.0.0.5", xff("203.0.113.7"), TRUSTED) == "203.0.113.7"


def test_trusted_proxies_setting_takes_a_list_of_addresses_and_networks() -> None:
    """Comma- or space-separated, or a JSON list; single addresses become /32 or /128."""
    settings = Settings(trusted_proxies="10.0.0.1, 192.168.0.0/16 ::1")  # type: ignore[arg-type]
    assert settings.trusted_proxies == (
        ipaddress.ip_network("10.0.0.1/32"),
        ipaddress.ip_network("192.168.0.0/16"),
        ipaddress.ip_network("::1/128"),
    )
    as_json = Settings(trusted_proxies='["10.0.0.1"]')  # type: ignore[arg-type]
    assert as_json.trusted_proxies == (ipaddress.ip_network("10.0.0.1/32"),)
    assert Settings().trusted_proxies == ()


@pytest.mark.parametrize("value", ["10.0.0.1/8", "proxy.internal", "[oops"])
def test_an_invalid_trusted_proxy_entry_is_refused_without_echoing_it(value: str) -> None:
    """Host bits set, a host name, or broken JSON: a validation error that names no value."""
    with pytest.raises(ValidationError) as caught:
        Settings(trusted_proxies=value)  # type: ignore[arg-type]
    messages = " ".join(e["msg"] for e in caught.value.errors())
    assert value not in messages
