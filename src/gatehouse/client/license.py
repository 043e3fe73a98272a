"""Check this machine's license with the server, falling back to the cached license file.

    from gatehouse.client import check_license, LicenseError

    try:
        claims = check_license("https://auth.example.com", app_id="com.example.app",
                               license_key=key, cache_dir=Path("~/.example").expanduser())
    except LicenseError as exc:
        sys.exit(f"not licensed: {exc}")

Two thin httpx drivers of the one flow in `_flow.py`: `check_license` (httpx.Client) and
`check_license_async` (httpx.AsyncClient; the hardware read and the flow's file work in a
worker thread). A transport
failure (no connection, timeout, broken response) becomes "no answer" for the flow, which
then uses the cache; nothing else is decided here.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx

from gatehouse.client._cache import LicenseCache
from gatehouse.client._flow import Flow, Request, Response, host_label, license_flow
from gatehouse.client.hardware import collect
from gatehouse.client.license_file import LicenseClaims

_HEADERS = {"Accept": "application/json"}


def _step(flow: Flow, response: Response | None) -> Request | LicenseClaims:
    """Hand the flow the last answer; get its next request, or its result."""
    try:
        return flow.send(response)
    except StopIteration as stop:
        result: LicenseClaims = stop.value
        return result


def _start(server_url: str, app_id: str, license_key: str | None, cache_dir: Path | str) -> Flow:
    return license_flow(
        server_url,
        collect(app_id),
        license_key=license_key,
        label=host_label(),
        cache=LicenseCache(Path(cache_dir)),
    )


def _send(client: httpx.Client, request: Request) -> Response | None:
    try:
        answer = client.request(request.method, request.url, json=request.json)
    except httpx.RequestError:
        return None
    return Response(answer.status_code, answer.content)


async def _send_async(client: httpx.AsyncClient, request: Request) -> Response | None:
    try:
        answer = await client.request(request.method, request.url, json=request.json)
    except httpx.RequestError:
        return None
    return Response(answer.status_code, answer.content)


def check_license(
    server_url: str,
    *,
    app_id: str,
    license_key: str | None = None,
    cache_dir: Path | str,
    timeout: float = 10.0,
) -> LicenseClaims:
    """Ask the server whether this machine is licensed; use the cached file if it is away.

    Args:
        server_url: the Gatehouse server's base URL (`https://auth.example.com`).
        app_id: the application's identifier; keys the hardware fingerprint.
        license_key: activates this machine if the server does not know it yet.
        cache_dir: where the last license file and JWKS are kept (made 0700).
        timeout: seconds for each HTTP request.

    Raises:
        LicenseDenied: the server refused this machine (the cached file is deleted).
        LicenseUnavailable: the server was not reached and nothing is cached.
        LicenseInvalid, LicenseExpired, LicenseMismatch: the license file (fresh or
            cached) is not usable on this machine now.
        FingerprintError: no hardware component of this machine could be read.
    """
    flow = _start(server_url, app_id, license_key, cache_dir)
    with httpx.Client(timeout=timeout, headers=_HEADERS) as client:
        step = _step(flow, None)
        while isinstance(step, Request):
            step = _step(flow, _send(client, step))
    return step


async def check_license_async(
    server_url: str,
    *,
    app_id: str,
    license_key: str | None = None,
    cache_dir: Path | str,
    timeout: float = 10.0,  # noqa: ASYNC109 -- per request, as httpx means it
) -> LicenseClaims:
    """`check_license` for asyncio; same arguments, same result, same errors."""
    # Reading the hardware may run tools for seconds (PowerShell), and the flow's steps
    # read, fsync and verify files: both run in a worker thread, off the event loop.
    flow = await asyncio.to_thread(_start, server_url, app_id, license_key, cache_dir)
    async with httpx.AsyncClient(timeout=timeout, headers=_HEADERS) as client:
        step = await asyncio.to_thread(_step, flow, None)
        while isinstance(step, Request):
            answer = await _send_async(client, step)
            step = await asyncio.to_thread(_step, flow, answer)
    return step
