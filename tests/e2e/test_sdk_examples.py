"""The SDK round trip as a user runs it: a real `gatehouse serve`, the FastAPI and the Flask
example services as their own processes on loopback, and the client example calling both,
a regular user refused where only admins may go."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import httpx

from tests.e2e.harness import PASSWORD, Deployment, free_port, register

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
ISSUER = "http://127.0.0.1:8000"  # the server's default GATEHOUSE_ISSUER


@contextlib.contextmanager
def _service(command: Sequence[str], port: int, env: dict[str, str], log: Path) -> Iterator[str]:
    """Run an example service until the block ends; wait (bounded) until it answers."""
    with log.open("wb") as output:
        process = subprocess.Popen(  # noqa: S603 - our own examples, fixed arguments
            command,
            cwd=EXAMPLES,
            env={**os.environ, **env},
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            if process.poll() is not None:
                raise AssertionError(f"{command} exited:\n{log.read_text()}")
            try:
                if httpx.get(base + "/notes", timeout=1).status_code == 401:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"{command} did not answer:\n{log.read_text()}")
            time.sleep(0.1)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def _round_trip(gatehouse: str, services: list[str], username: str) -> list[str]:
    result = subprocess.run(  # noqa: S603 - our own example, fixed arguments
        [sys.executable, str(EXAMPLES / "sdk_round_trip.py"), username],
        input=PASSWORD + "\n",
        capture_output=True,
        text=True,
        env={**os.environ, "GATEHOUSE_URL": gatehouse, "NOTES_URLS": ",".join(services)},
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()


def test_the_sdk_example_calls_both_example_services(
    deployment: Deployment, tmp_path: Path
) -> None:
    """alice (a user) reads notes on both services and is refused the admin report (403);
    an admin gets both. Each service verifies the tokens itself against the JWKS."""
    with deployment.serve() as server, server.client() as client:
        register(client, "alice")
        made = deployment.cli(
            "users", "create", "boss", "--admin", "--password-stdin", stdin=PASSWORD + "\n"
        )
        assert made.returncode == 0, made.stderr
        env = {
            "GATEHOUSE_ISSUER": ISSUER,
            "GATEHOUSE_JWKS_URL": f"{server.base_url}/.well-known/jwks.json",
        }
        fastapi_port, flask_port = free_port(), free_port()
        uvicorn = [
            sys.executable,
            "-m",
            "uvicorn",
            "resource_fastapi:app",
            "--port",
            str(fastapi_port),
        ]
        flask = [sys.executable, "resource_flask.py"]
        with (
            _service(uvicorn, fastapi_port, env, tmp_path / "fastapi.log") as fastapi_url,
            _service(
                flask, flask_port, {**env, "PORT": str(flask_port)}, tmp_path / "flask.log"
            ) as flask_url,
        ):
            services = [fastapi_url, flask_url]
            alice = _round_trip(server.base_url, services, "alice")
            boss = _round_trip(server.base_url, services, "boss")
    assert alice == [
        "logged in as alice",
        f"{fastapi_url}/notes 200",
        f"{fastapi_url}/admin/report 403",
        f"{flask_url}/notes 200",
        f"{flask_url}/admin/report 403",
    ]
    assert boss == [
        "logged in as boss",
        f"{fastapi_url}/notes 200",
        f"{fastapi_url}/admin/report 200",
        f"{flask_url}/notes 200",
        f"{flask_url}/admin/report 200",
    ]
