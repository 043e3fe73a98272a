"""Which bucket a client address counts in.

IPv4 addresses count one by one. IPv6 addresses count by their /64: one subscriber is
routinely given a whole /64 (RFC 6177), so counting single IPv6 addresses would give an
attacker 2^64 fresh buckets. IPv4-mapped IPv6 (`::ffff:192.0.2.1`, what a dual-stack
socket reports) is the IPv4 address it carries. No address, or one that does not parse,
shares one `unknown` bucket: a request we cannot place must not get a limit of its own.

This mirrors `http/client_address.parse_address`; limits never import the HTTP layer.
"""

from __future__ import annotations

import functools
import ipaddress

UNKNOWN_ADDRESS = "unknown"
IPV6_PREFIX = 64


# Parsing costs 1-12 us (IPv6 most); a hot route sees the same few addresses again and again.
@functools.lru_cache(maxsize=8192)
def address_key(ip: str | None) -> str:
    """The bucket of `ip`: `203.0.113.7`, `2001:db8:1:2::/64`, or `unknown`."""
    if not ip:
        return UNKNOWN_ADDRESS
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return UNKNOWN_ADDRESS
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        network = ipaddress.IPv6Network((address, IPV6_PREFIX), strict=False)
        return str(network)
    return str(address)
