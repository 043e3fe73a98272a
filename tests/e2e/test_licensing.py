"""Machine licensing end to end: a real `gatehouse serve`, the real `gatehouse.client`
module on this machine's real fingerprint, and the example program run as a user runs it,
including with the server process stopped."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from gatehouse.client import (
    LicenseDenied,
    LicenseUnavailable,
    check_license,
    check_license_async,
    collect,
    verify_license_file,
)
from tests.e2e.harness import PASSWORD, Deployment, bearer, file_mode, login

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "licensed_app.py"
APP_ID = "com.example.acme-desktop"


def _admin_token(deployment: Deployment, client: httpx.Client) -> str:
    made = deployment.cli(
        "users", "create", "root", "--admin", "--password-stdin", stdin=PASSWORD + "\n"
    )
    assert made.returncode == 0, made.stderr
    return login(client, "root")


def _license(client: httpx.Client, admin: str, **body: Any) -> dict[str, Any]:
    response = client.post(
        "/admin/licenses",
        json={"product": "Acme Desktop", "max_devices": 1, "features": ["export"], **body},
        headers=bearer(admin),
    )
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def _run_example(server_url: str, cache: Path, key: str | None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "GATEHOUSE_URL": server_url, "ACME_CACHE_DIR": str(cache)}
    env.pop("ACME_LICENSE_KEY", None)
    if key is not None:
        env["ACME_LICENSE_KEY"] = key
    return subprocess.run(  # noqa: S603 - our own example, fixed arguments
        [sys.executable, str(EXAMPLE)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


def test_the_example_activates_then_keeps_running_offline_on_its_cached_license(
    deployment: Deployment, tmp_path: Path
) -> None:
    """First run: activation with the key, a 0600 license file in a 0700 cache. With the
    server process stopped: the same program still starts from the cached, signed file; a
    machine with nothing cached does not."""
    cache = tmp_path / "cache"
    with deployment.serve() as server, server.client() as client:
        admin = _admin_token(deployment, client)
        key = _license(client, admin)["license_key"]
        first = _run_example(server.base_url, cache, key)
        assert first.returncode == 0, first.stderr
        assert first.stdout.startswith("licensed: Acme Desktop ['export'] until ")
        again = _run_example(server.base_url, cache, None)  # verify: no key needed now
        assert again.returncode == 0, again.stderr
        devices = client.get("/admin/devices", headers=bearer(admin)).json()["items"]
        assert len(devices) == 1
        stopped_url = server.base_url
    assert file_mode(cache) == 0o700
    assert file_mode(cache / "license.jwt") == 0o600

    offline = _run_example(stopped_url, cache, None)
    assert offline.returncode == 0, offline.stderr
    # The cached file is the last one the server issued: the same license, the same expiry.
    assert offline.stdout == again.stdout
    nothing = _run_example(stopped_url, tmp_path / "empty", None)
    assert nothing.returncode == 1
    assert nothing.stdout == ""
    assert "not licensed on this machine" in nothing.stderr


def test_check_license_reflects_revocation_and_forgets_the_cached_file(
    deployment: Deployment, tmp_path: Path
) -> None:
    """The real client on this machine: activated; its license file verifies offline
    against the JWKS; once an admin revokes the device, check_license raises LicenseDenied
    (device_revoked) and deletes the cached file, so it cannot run offline either."""
    cache = tmp_path / "cache"
    fingerprint = collect(APP_ID)
    with deployment.serve() as server, server.client() as client:
        admin = _admin_token(deployment, client)
        lic = _license(client, admin, policy={"match": {"min_components": 2}})
        claims = check_license(
            server.base_url, app_id=APP_ID, license_key=lic["license_key"], cache_dir=cache
        )
        assert claims.license_id == lic["id"]
        assert claims.fingerprint == fingerprint.fingerprint
        jwks = client.get("/.well-known/jwks.json").json()
        token = (cache / "license.jwt").read_text()
        offline = verify_license_file(token, jwks=jwks, fingerprint=fingerprint.fingerprint)
        assert offline.device_id == claims.device_id

        again = asyncio.run(check_license_async(server.base_url, app_id=APP_ID, cache_dir=cache))
        assert again.device_id == claims.device_id

        revoked = client.patch(
            f"/admin/devices/{claims.device_id}",
            json={"status": "revoked"},
            headers=bearer(admin),
        )
        assert revoked.status_code == 200
        with pytest.raises(LicenseDenied) as denied:
            check_license(server.base_url, app_id=APP_ID, cache_dir=cache)
        assert denied.value.code == "device_revoked"
        assert not (cache / "license.jwt").exists()
        stopped_url = server.base_url
    with pytest.raises(LicenseUnavailable):
        check_license(stopped_url, app_id=APP_ID, cache_dir=cache)


def test_a_full_license_is_denied_to_a_second_machine(
    deployment: Deployment, tmp_path: Path
) -> None:
    """Another machine (another app id gives this host another fingerprint) cannot take the
    one seat: LicenseDenied with license_full."""
    with deployment.serve() as server, server.client() as client:
        admin = _admin_token(deployment, client)
        key = _license(client, admin)["license_key"]
        check_license(server.base_url, app_id=APP_ID, license_key=key, cache_dir=tmp_path / "a")
        with pytest.raises(LicenseDenied) as denied:
            check_license(
                server.base_url,
                app_id="com.example.other",
                license_key=key,
                cache_dir=tmp_path / "b",
            )
    assert denied.value.code == "license_full"
    assert denied.value.status == 403


def test_the_server_records_device_audit_events_and_logs_them(deployment: Deployment) -> None:
    """`gatehouse serve` stores each audit event (GET /admin/audit) and logs it too: here a
    registration (stored with the change) and a failed verification from this client's
    address (stored within a second); no fingerprint in the trail or the log."""
    unknown = "0" * 63 + "1"
    with deployment.serve() as server, server.client() as client:
        admin = _admin_token(deployment, client)
        made = client.post(
            "/admin/devices",
            json={"hardware_hash": "ab" * 32, "label": "desk"},
            headers=bearer(admin),
        )
        assert made.status_code == 201
        assert client.post("/devices/verify", json={"hardware_hash": unknown}).status_code == 401

        def trail(event_type: str) -> list[dict[str, Any]]:
            response = client.get(
                "/admin/audit", params={"type": event_type}, headers=bearer(admin)
            )
            assert response.status_code == 200, response.text
            items: list[dict[str, Any]] = response.json()["items"]
            return items

        (registered,) = trail("device.registered")
        deadline = time.monotonic() + 10
        while not (failures := trail("device.verify_failed")) and time.monotonic() < deadline:
            time.sleep(0.05)
        everything = client.get("/admin/audit", headers=bearer(admin)).text
        log = server.log()
    assert registered["subject"] == {"kind": "device", "id": made.json()["id"]}
    assert registered["actor"]["kind"] == "user"
    (failed,) = failures
    assert failed["outcome"] == "failure"
    assert failed["actor"] == {"kind": "anonymous", "id": None}
    assert failed["ip"] == "127.0.0.1"
    assert failed["detail"] == {"reason": "unknown_device"}
    assert registered["id"] in log
    assert failed["id"] in log
    for fingerprint in (unknown, "ab" * 32):
        assert fingerprint not in log
        assert fingerprint not in everything
