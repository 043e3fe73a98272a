"""The license check's decision flow, written once, without I/O of its own (sans-IO).

`license_flow` is a generator: it yields each HTTP `Request` it wants sent and receives the
`Response`, or None when the server could not be reached. `license.py` drives it with
httpx's sync or async client. The flow reads and writes the cache itself (small local
files). It decides:

1. `POST /devices/verify` with the fingerprint and components.
2. 401 `unknown_device` and a license key given: `POST /devices/activate` instead.
3. A problem (4xx with a `code`) from either: the server said no. Forget the cached
   license file (a revoked machine must not keep running offline), raise LicenseDenied.
4. 200 with a grant: fetch the JWKS (cached one if that fails), verify the license file
   against this machine's fingerprint, cache both, return the claims.
5. Anything else (unreachable, timeout, 5xx, 429, a 2xx of the wrong shape): verify the
   cached license file instead, or raise LicenseUnavailable.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Generator
from dataclasses import dataclass
from typing import Any

from gatehouse.client._cache import LicenseCache
from gatehouse.client.errors import LicenseDenied, LicenseUnavailable
from gatehouse.client.hardware import Fingerprint
from gatehouse.client.license_file import LicenseClaims, verify_license_file

# Busy (429) or slow (408) is not a verdict on this machine; those fall back to the cache.
_NOT_A_VERDICT = frozenset({408, 429})
_LABEL_LIMIT = 100


@dataclass(frozen=True, slots=True)
class Request:
    """One HTTP request the flow wants sent."""

    method: str
    url: str
    json: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class Response:
    """What came back: the status and the raw body."""

    status: int
    body: bytes


Flow = Generator[Request, Response | None, LicenseClaims]


def _json(response: Response | None) -> Any:
    if response is None:
        return None
    try:
        return json.loads(response.body)
    except (ValueError, RecursionError):  # RecursionError: absurdly nested JSON
        return None


def _problem(response: Response | None) -> tuple[str, str] | None:
    """The (code, detail) of a refusal, or None if the answer is not a verdict."""
    if response is None or not 400 <= response.status < 500:
        return None
    if response.status in _NOT_A_VERDICT:
        return None
    body = _json(response)
    # A 4xx without a problem body (a proxy's 404, say) is not Gatehouse refusing us.
    if not isinstance(body, dict) or not isinstance(body.get("code"), str):
        return None
    detail = body.get("detail")
    return body["code"], detail if isinstance(detail, str) else ""


def _license_file(response: Response | None) -> str | None:
    """The license file of a well-formed 200 answer of verify or activate, else None."""
    if response is None or response.status != 200:
        return None
    body = _json(response)
    if not isinstance(body, dict):
        return None
    license_ = body.get("license")
    shaped = (
        isinstance(body.get("device_id"), str)
        and (license_ is None or isinstance(license_, dict))
        and isinstance(body.get("access_token"), str)
        and isinstance(body.get("expires_in"), int)
        and isinstance(body.get("license_file"), str)
    )
    return body["license_file"] if shaped else None


def _jwks(response: Response | None) -> dict[str, Any] | None:
    body = _json(response) if response is not None and response.status == 200 else None
    if isinstance(body, dict) and isinstance(body.get("keys"), list):
        return body
    return None


def host_label() -> str | None:
    """This machine's host name, cut to what the server keeps, or None if it has none."""
    try:
        name = socket.gethostname()
    except OSError:
        return None
    return name[:_LABEL_LIMIT] or None


def from_cache(cache: LicenseCache, fingerprint: str) -> LicenseClaims:
    """The claims of the cached license file, checked as strictly as a fresh one.

    Raises:
        LicenseUnavailable: no license file (or no key set) is cached.
        LicenseInvalid, LicenseExpired, LicenseMismatch: the cached file is not usable.
    """
    token, jwks = cache.read_license(), cache.read_jwks()
    if token is None or jwks is None:
        raise LicenseUnavailable(
            "the license server cannot be reached and no license file is cached"
        )
    return verify_license_file(token, jwks=jwks, fingerprint=fingerprint)


def license_flow(
    base_url: str,
    fp: Fingerprint,
    *,
    license_key: str | None,
    label: str | None,
    cache: LicenseCache,
) -> Flow:
    """The whole check for one machine; see the module docstring for the steps."""
    base = base_url.rstrip("/")
    machine: dict[str, Any] = {"fingerprint": fp.fingerprint, "components": dict(fp.components)}
    response = yield Request("POST", f"{base}/devices/verify", machine)
    problem = _problem(response)
    if problem is not None and problem[0] == "unknown_device" and license_key is not None:
        activation = {"license_key": license_key, **machine}
        if label is not None:
            activation["label"] = label
        response = yield Request("POST", f"{base}/devices/activate", activation)
        problem = _problem(response)
    if problem is not None and response is not None:
        cache.forget_license()
        raise LicenseDenied(response.status, *problem)

    token = _license_file(response)
    if token is None:
        return from_cache(cache, fp.fingerprint)

    jwks = _jwks((yield Request("GET", f"{base}/.well-known/jwks.json")))
    if jwks is not None:
        cache.save_jwks(jwks)
    else:
        jwks = cache.read_jwks()
        if jwks is None:
            raise LicenseUnavailable("the license server's keys could not be fetched")
    # A file that does not verify raises here and is not cached.
    claims = verify_license_file(token, jwks=jwks, fingerprint=fp.fingerprint)
    cache.save_license(token)
    return claims
