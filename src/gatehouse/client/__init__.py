"""Client SDK for Gatehouse: log in and stay logged in, and run under a machine license.

    from gatehouse.client import AuthError, Client, FileTokenStore

    with Client("https://auth.example.com", store=FileTokenStore(path)) as gatehouse:
        if gatehouse.store.load() is None:
            gatehouse.login("alice", password, device_name="laptop")
        print(gatehouse.me().username)
        httpx.get("https://api.example.com/reports", auth=gatehouse.auth)

`Client` / `AsyncClient` log in (password or API key), keep the tokens in a `TokenStore`,
renew them before they expire (one refresh however many callers need it) and hand out
`auth`, an `httpx.Auth` for calls to other services. `check_license` /
`check_license_async` ask the server about this machine and fall back to the cached,
signed license file when it is away; `verify_license_file` checks such a file offline;
`collect` reads this machine's app-keyed hardware fingerprint. Every exception raised is an
`AuthError`. Never imports the server (import-linter holds that line).
"""

from gatehouse.client._async import AsyncClient
from gatehouse.client._sync import Client
from gatehouse.client.auth import AsyncTokenAuth, TokenAuth
from gatehouse.client.errors import (
    ApiError,
    AuthError,
    InvalidCredentials,
    LicenseDenied,
    LicenseError,
    LicenseExpired,
    LicenseInvalid,
    LicenseMismatch,
    LicenseUnavailable,
    RateLimited,
    ServerUnavailable,
    SessionRevoked,
)
from gatehouse.client.hardware import Fingerprint, FingerprintError, collect
from gatehouse.client.license import check_license, check_license_async
from gatehouse.client.license_file import LICENSE_TYPE, LicenseClaims, verify_license_file
from gatehouse.client.models import ClientToken, SessionInfo, TokenPair, User
from gatehouse.client.stores import FileTokenStore, MemoryTokenStore, StoredTokens, TokenStore

__all__ = [
    "Client",
    "AsyncClient",
    "TokenAuth",
    "AsyncTokenAuth",
    "TokenPair",
    "ClientToken",
    "User",
    "SessionInfo",
    "TokenStore",
    "StoredTokens",
    "MemoryTokenStore",
    "FileTokenStore",
    "AuthError",
    "InvalidCredentials",
    "SessionRevoked",
    "RateLimited",
    "ServerUnavailable",
    "ApiError",
    "check_license",
    "check_license_async",
    "verify_license_file",
    "LicenseClaims",
    "LICENSE_TYPE",
    "collect",
    "Fingerprint",
    "FingerprintError",
    "LicenseError",
    "LicenseInvalid",
    "LicenseExpired",
    "LicenseMismatch",
    "LicenseDenied",
    "LicenseUnavailable",
]
