"""Gatehouse: a self-hosted authentication server with its client SDK and token verifier.

`gatehouse.server` is the server (install the `server` extra); `gatehouse.verifier` checks
access tokens for resource servers; `gatehouse.client` is the SDK for programs that log in.
"""

__version__ = "0.1.0"
