"""check_license: the server's verdict first, the cached license file when it is away.

The drivers run for real against a closed port (no server) and a small stdlib HTTP server
with canned answers; the decision flow is also driven directly with canned responses.
Every test of a driver runs for `check_license` and `check_license_async`.
"""

from __future__ import annotations

import json
import os
import socket
import stat
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from gatehouse.client import (
    LicenseClaims,
    LicenseDenied,
    LicenseExpired,
    LicenseMismatch,
    LicenseUnavailable,
    check_license,
    check_license_async,
    collect,
)
from gatehouse.client._cache import LicenseCache, write_atomic
from gatehouse.client._flow import Flow, Request, Response, license_flow
from gatehouse.client.hardware import Fingerprint, from_raw
from tests.client.helpers import Signer, license_claims

APP = "com.example.check"
KEY = "ghl_example-license-key-0123456789"
Check = Callable[..., Awaitable[LicenseClaims]]


def fresh_claims(fingerprint: str, **overrides: Any) -> dict[str, Any]:
    """License claims valid now (real clock) for a day."""
    now = int(time.time())
    return license_claims(fingerprint, iat=now, exp=now + 86400, **overrides)


def fill_cache(directory: Path, token: str, jwks: dict[str, Any] | None) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "license.jwt").write_text(token)
    if jwks is not None:
        (directory / "jwks.json").write_text(json.dumps(jwks))


@pytest.fixture(scope="module")
def machine() -> Fingerprint:
    return collect(APP)


@pytest.fixture
def signer() -> Signer:
    return Signer()


@pytest.fixture
def closed_port_url() -> str:
    """The URL of a loopback port nobody listens on (bound, then closed)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@pytest.fixture(params=["sync", "async"])
def check(request: pytest.FixtureRequest) -> Check:
    """check_license or check_license_async, both awaitable here."""
    if request.param == "async":
        return check_license_async

    async def sync(*args: Any, **kwargs: Any) -> LicenseClaims:
        return check_license(*args, **kwargs)

    return sync


# -- the drivers without a server ----------------------------------------------------------


async def test_an_unreachable_server_falls_back_to_the_cached_license(
    check: Check, closed_port_url: str, tmp_path: Path, signer: Signer, machine: Fingerprint
) -> None:
    """With the server down, a valid cached license file for this machine gives its claims."""
    fill_cache(tmp_path, signer.sign(fresh_claims(machine.fingerprint)), signer.jwks())
    claims = await check(closed_port_url, app_id=APP, cache_dir=tmp_path, timeout=2.0)
    assert claims.fingerprint == machine.fingerprint
    assert claims.product == "pro"


async def test_an_unreachable_server_and_no_cache_is_unavailable(
    check: Check, closed_port_url: str, tmp_path: Path
) -> None:
    """With the server down and nothing cached, LicenseUnavailable is raised."""
    with pytest.raises(LicenseUnavailable):
        await check(closed_port_url, app_id=APP, cache_dir=tmp_path / "cache", timeout=2.0)


async def test_an_unreachable_server_and_an_expired_cache_is_expired(
    check: Check, closed_port_url: str, tmp_path: Path, signer: Signer, machine: Fingerprint
) -> None:
    """A cached license file past its offline grace raises LicenseExpired."""
    now = int(time.time())
    claims = license_claims(machine.fingerprint, iat=now - 100, exp=now - 10)
    fill_cache(tmp_path, signer.sign(claims), signer.jwks())
    with pytest.raises(LicenseExpired):
        await check(closed_port_url, app_id=APP, cache_dir=tmp_path, timeout=2.0)


async def test_a_cached_license_of_another_app_id_is_a_mismatch(
    check: Check, closed_port_url: str, tmp_path: Path, signer: Signer
) -> None:
    """A cached file for this machine under another app_id does not fit: LicenseMismatch."""
    other = collect("com.example.other").fingerprint
    fill_cache(tmp_path, signer.sign(fresh_claims(other)), signer.jwks())
    with pytest.raises(LicenseMismatch):
        await check(closed_port_url, app_id=APP, cache_dir=tmp_path, timeout=2.0)


async def test_a_cached_license_without_its_key_set_is_unavailable(
    check: Check, closed_port_url: str, tmp_path: Path, signer: Signer, machine: Fingerprint
) -> None:
    """A cached license file without a cached JWKS cannot be checked: LicenseUnavailable."""
    fill_cache(tmp_path, signer.sign(fresh_claims(machine.fingerprint)), None)
    with pytest.raises(LicenseUnavailable):
        await check(closed_port_url, app_id=APP, cache_dir=tmp_path, timeout=2.0)


# -- the drivers against canned HTTP answers ------------------------------------------------


class CannedServer(ThreadingHTTPServer):
    """Answers each path with a fixed (status, JSON body); records what it was sent."""

    def __init__(self, answers: dict[str, tuple[int, Any]]) -> None:
        super().__init__(("127.0.0.1", 0), CannedHandler)
        self.answers = answers
        self.received: list[tuple[str, str, Any]] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class CannedHandler(BaseHTTPRequestHandler):
    server: CannedServer

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length)) if length else None
        self.server.received.append((self.command, self.path, body))
        status, answer = self.server.answers.get(self.path, (404, {"detail": "Not Found"}))
        data = json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = _answer

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the tests assert on `received`."""


@pytest.fixture
def canned() -> Iterator[Callable[[dict[str, tuple[int, Any]]], CannedServer]]:
    servers: list[CannedServer] = []

    def start(answers: dict[str, tuple[int, Any]]) -> CannedServer:
        server = CannedServer(answers)
        threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def grant(token: str) -> dict[str, Any]:
    """A 200 body of /devices/verify or /devices/activate."""
    return {
        "device_id": "0b6a4c1e-27d4-4f4e-9c2b-6d1f0e7a9c33",
        "license": {"id": "l1", "product": "pro", "features": [], "expires_at": None},
        "access_token": "eyJ.access.token",
        "expires_in": 900,
        "license_file": token,
    }


def problem(status: int, code: str, detail: str = "") -> tuple[int, dict[str, Any]]:
    body = {"type": "about:blank", "title": code, "status": status, "code": code}
    return status, {**body, "detail": detail}


async def test_a_verified_machine_gets_fresh_claims_and_a_private_cache(
    check: Check, canned: Any, tmp_path: Path, signer: Signer, machine: Fingerprint
) -> None:
    """A 200 from verify gives the file's claims, cached 0600 in a new 0700 directory."""
    token = signer.sign(fresh_claims(machine.fingerprint))
    server = canned(
        {"/devices/verify": (200, grant(token)), "/.well-known/jwks.json": (200, signer.jwks())}
    )
    cache_dir = tmp_path / "app" / "license"
    claims = await check(server.url, app_id=APP, cache_dir=cache_dir)
    assert claims.fingerprint == machine.fingerprint
    assert server.received[0] == (
        "POST",
        "/devices/verify",
        {"fingerprint": machine.fingerprint, "components": machine.components},
    )
    assert stat.S_IMODE(cache_dir.stat().st_mode) == 0o700
    assert (cache_dir / "license.jwt").read_text() == token
    assert json.loads((cache_dir / "jwks.json").read_text()) == signer.jwks()
    for name in ("license.jwt", "jwks.json"):
        assert stat.S_IMODE((cache_dir / name).stat().st_mode) == 0o600
    assert sorted(os.listdir(cache_dir)) == ["jwks.json", "license.jwt"]


async def test_a_revoked_machine_is_denied_and_its_cached_license_deleted(
    check: Check, canned: Any, tmp_path: Path, signer: Signer, machine: Fingerprint
) -> None:
    """A 403 problem raises LicenseDenied with its fields and deletes the cached file."""
    fill_cache(tmp_path, signer.sign(fresh_claims(machine.fingerprint)), signer.jwks())
    server = canned({"/devices/verify": problem(403, "device_revoked", "revoked by an admin")})
    with pytest.raises(LicenseDenied) as caught:
        await check(server.url, app_id=APP, license_key=KEY, cache_dir=tmp_path)
    denied = caught.value
    assert (denied.status, denied.code, denied.detail) == (
        403,
        "device_revoked",
        "revoked by an admin",
    )
    assert KEY not in str(denied)
    assert not (tmp_path / "license.jwt").exists()


# -- the decision flow, driven with canned responses --------------------------------------

FP = from_raw(APP, {"machine_id": "3d1219c7c4c5404aaa1f6d2a48adfda4", "cpu": "amd epyc"})
BASE = "https://auth.example.com"


def answer(status: int, body: Any) -> Response:
    return Response(status, body if isinstance(body, bytes) else json.dumps(body).encode())


def drive(flow: Flow, answers: Iterable[Response | None], sent: list[Request]) -> LicenseClaims:
    """Run the flow to its end, answering its requests in order; record what it asked."""
    replies = iter(answers)
    try:
        request = next(flow)
        while True:
            sent.append(request)
            request = flow.send(next(replies))
    except StopIteration as stop:
        result: LicenseClaims = stop.value
        return result


def flow_for(tmp_path: Path, license_key: str | None = None) -> Flow:
    cache = LicenseCache(tmp_path)
    return license_flow(BASE, FP, license_key=license_key, label="build-host", cache=cache)


def test_flow_verifies_then_fetches_keys_and_caches(tmp_path: Path, signer: Signer) -> None:
    """verify 200, then the JWKS: the claims come back and both files are cached."""
    token = signer.sign(fresh_claims(FP.fingerprint))
    sent: list[Request] = []
    claims = drive(
        flow_for(tmp_path), [answer(200, grant(token)), answer(200, signer.jwks())], sent
    )
    assert claims.fingerprint == FP.fingerprint
    assert [(r.method, r.url) for r in sent] == [
        ("POST", f"{BASE}/devices/verify"),
        ("GET", f"{BASE}/.well-known/jwks.json"),
    ]
    assert (tmp_path / "license.jwt").read_text() == token


def test_flow_activates_an_unknown_device_with_the_license_key(
    tmp_path: Path, signer: Signer
) -> None:
    """401 unknown_device with a key given: activate with key, fingerprint, components, label."""
    token = signer.sign(fresh_claims(FP.fingerprint))
    sent: list[Request] = []
    unknown = answer(*problem(401, "unknown_device"))
    answers = [unknown, answer(200, grant(token)), answer(200, signer.jwks())]
    drive(flow_for(tmp_path, license_key=KEY), answers, sent)
    assert sent[1] == Request(
        "POST",
        f"{BASE}/devices/activate",
        {
            "license_key": KEY,
            "fingerprint": FP.fingerprint,
            "components": FP.components,
            "label": "build-host",
        },
    )


@pytest.mark.parametrize(
    ("answers", "key"),
    [
        ([problem(401, "unknown_device")], None),
        ([problem(403, "device_suspended")], KEY),
        ([problem(403, "license_expired")], None),
        ([problem(422, "invalid_fingerprint")], None),
        ([problem(401, "unknown_device"), problem(403, "license_full")], KEY),
        ([problem(401, "unknown_device"), problem(404, "invalid_license_key")], KEY),
    ],
    ids=["unknown-no-key", "suspended", "license-expired", "422", "full", "bad-key"],
)
def test_flow_turns_a_refusal_into_denied_and_forgets_the_license(
    tmp_path: Path, signer: Signer, answers: list[tuple[int, Any]], key: str | None
) -> None:
    """Any problem answer of verify or activate raises LicenseDenied and deletes the file."""
    fill_cache(tmp_path, signer.sign(fresh_claims(FP.fingerprint)), signer.jwks())
    with pytest.raises(LicenseDenied) as caught:
        drive(flow_for(tmp_path, key), [answer(*a) for a in answers], [])
    assert (caught.value.status, caught.value.code) == (answers[-1][0], answers[-1][1]["code"])
    assert not (tmp_path / "license.jwt").exists()


@pytest.mark.parametrize(
    "reply",
    [
        None,
        answer(500, {"code": "internal"}),
        answer(503, b"busy"),
        answer(*problem(429, "rate_limited")),
        answer(404, {"detail": "Not Found"}),
        answer(302, b""),
        answer(200, b"<html>captive portal</html>"),
        answer(200, {"device_id": "d", "license_file": 7}),
    ],
    ids=["unreachable", "500", "503", "429", "404-no-problem", "302", "200-html", "200-shape"],
)
def test_flow_falls_back_to_the_cache_when_the_server_gives_no_verdict(
    tmp_path: Path, signer: Signer, reply: Response | None
) -> None:
    """No answer, 5xx, 429, a 4xx without a problem or a malformed 200: the cache decides."""
    token = signer.sign(fresh_claims(FP.fingerprint))
    fill_cache(tmp_path, token, signer.jwks())
    sent: list[Request] = []
    claims = drive(flow_for(tmp_path, KEY), [reply], sent)
    assert claims.fingerprint == FP.fingerprint
    assert len(sent) == 1
    assert (tmp_path / "license.jwt").read_text() == token


def test_flow_uses_the_cached_keys_when_the_jwks_fetch_fails(
    tmp_path: Path, signer: Signer
) -> None:
    """verify 200 but the JWKS unreachable: the cached JWKS verifies the fresh file."""
    (tmp_path / "jwks.json").write_text(json.dumps(signer.jwks()))
    token = signer.sign(fresh_claims(FP.fingerprint))
    claims = drive(flow_for(tmp_path), [answer(200, grant(token)), None], [])
    assert claims.fingerprint == FP.fingerprint
    assert (tmp_path / "license.jwt").read_text() == token


def test_flow_without_any_keys_is_unavailable(tmp_path: Path, signer: Signer) -> None:
    """verify 200, the JWKS unreachable and none cached: LicenseUnavailable."""
    token = signer.sign(fresh_claims(FP.fingerprint))
    with pytest.raises(LicenseUnavailable):
        drive(flow_for(tmp_path), [answer(200, grant(token)), answer(503, b"")], [])


def test_flow_never_caches_a_fresh_file_that_does_not_fit(tmp_path: Path, signer: Signer) -> None:
    """A server's file for another fingerprint raises LicenseMismatch; the cache is untouched."""
    old = signer.sign(fresh_claims(FP.fingerprint))
    fill_cache(tmp_path, old, signer.jwks())
    wrong = signer.sign(fresh_claims("a0" * 32))
    with pytest.raises(LicenseMismatch):
        drive(flow_for(tmp_path), [answer(200, grant(wrong)), answer(200, signer.jwks())], [])
    assert (tmp_path / "license.jwt").read_text() == old


# -- the cache files ------------------------------------------------------------------------


def test_the_cache_directory_is_made_0700_and_its_files_0600(tmp_path: Path) -> None:
    """A missing cache directory is created 0700; the files written in it are 0600."""
    cache = LicenseCache(tmp_path / "new" / "cache")
    cache.save_license("a.b.c")
    cache.save_jwks({"keys": []})
    assert stat.S_IMODE(cache.directory.stat().st_mode) == 0o700
    for name in ("license.jwt", "jwks.json"):
        assert stat.S_IMODE((cache.directory / name).stat().st_mode) == 0o600


def test_an_atomic_write_replaces_the_file_and_leaves_no_temp_file(tmp_path: Path) -> None:
    """Writing twice leaves only the target, holding the second content."""
    target = tmp_path / "license.jwt"
    write_atomic(target, b"first")
    write_atomic(target, b"second")
    assert os.listdir(tmp_path) == ["license.jwt"]
    assert target.read_bytes() == b"second"


def test_a_failed_atomic_write_leaves_no_temp_file(tmp_path: Path) -> None:
    """When the final rename fails (the target is a non-empty directory), no temp file stays."""
    target = tmp_path / "license.jwt"
    target.mkdir()
    (target / "keep").write_text("x")
    with pytest.raises(OSError):  # noqa: PT011 -- the OS picks the errno; any OSError is the point
        write_atomic(target, b"data")
    assert os.listdir(tmp_path) == ["license.jwt"]
