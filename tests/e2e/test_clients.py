"""Stock clients against a real `gatehouse serve`: the README's curl, httpx and Java examples.

Each example in examples/ is run as a user would run it, and the README shows each one
verbatim. The curl and Java runs first show that the client really offers `Upgrade: h2c`
(curl's trace; a one-shot recorder socket for the JDK), so the round trip that follows
proves the offer is served, not that it was never made.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from tests.e2e.harness import PASSWORD, Server

ROOT = Path(__file__).parents[2]
EXAMPLES = ROOT / "examples"
JAVA_EXAMPLE = EXAMPLES / "java" / "TokenRoundTrip.java"
RUN_TIMEOUT_SECONDS = 60


def _run(
    command: list[str], *, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - fixed commands of the test
        command,
        input=PASSWORD + "\n",
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=RUN_TIMEOUT_SECONDS,
        check=False,
    )


def _assert_alice(output: str) -> None:
    assert json.loads(output)["username"] == "alice", output


@pytest.mark.parametrize("curl_opts", ["", "--http2"], ids=["http1.1", "http2-offer"])
def test_the_curl_example_round_trips(alice_server: Server, curl_opts: str) -> None:
    """examples/curl_round_trip.sh gets a token and alice's profile, with and without
    `--http2` (which offers h2c, as curl's own trace shows)."""
    env = {"GATEHOUSE_URL": alice_server.base_url, "CURL_OPTS": f"{curl_opts} -v".strip()}
    result = _run(["bash", str(EXAMPLES / "curl_round_trip.sh"), "alice"], env=env)
    assert result.returncode == 0, result.stderr
    _assert_alice(result.stdout)
    offered = "> Upgrade: h2c" in result.stderr
    assert offered == (curl_opts == "--http2"), result.stderr
    assert "< HTTP/1.1 200" in result.stderr


def test_the_httpx_example_round_trips(alice_server: Server) -> None:
    """examples/httpx_round_trip.py prints alice's profile."""
    result = _run(
        [sys.executable, str(EXAMPLES / "httpx_round_trip.py"), "alice"],
        env={"GATEHOUSE_URL": alice_server.base_url},
    )
    assert result.returncode == 0, result.stderr
    _assert_alice(result.stdout)


def _java() -> str:
    java = shutil.which("java")
    assert java, "java is missing: .ci/run installs default-jdk-headless"
    return java


def _record_one_request_head() -> tuple[int, dict[str, bytes], threading.Thread]:
    """A socket that accepts one connection, keeps its request head, and answers 503."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    listener.settimeout(RUN_TIMEOUT_SECONDS)
    seen: dict[str, bytes] = {}

    def serve() -> None:
        with listener:
            conn, _ = listener.accept()
            with conn:
                head = b""
                while b"\r\n\r\n" not in head:
                    chunk = conn.recv(65536)
                    if not chunk:
                        break
                    head += chunk
                seen["head"] = head.split(b"\r\n\r\n", 1)[0]
                conn.sendall(b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\r\n")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return listener.getsockname()[1], seen, thread


def test_the_jdk_client_offers_h2c_on_the_token_post() -> None:
    """The Java example's first request (a form POST) carries `Upgrade: h2c` with
    `Connection: Upgrade, HTTP2-Settings`: the offer that used to lose the body."""
    port, seen, thread = _record_one_request_head()
    result = _run([_java(), str(JAVA_EXAMPLE), f"http://127.0.0.1:{port}", "alice"])
    thread.join(timeout=RUN_TIMEOUT_SECONDS)
    assert result.returncode == 1, result.stderr  # the recorder answered 503
    head = seen["head"].decode("latin-1").lower()
    assert head.startswith("post /oauth/token http/1.1"), head
    assert "\r\nupgrade: h2c" in head
    assert "http2-settings" in head


def test_the_java_example_round_trips_with_default_http_client(alice_server: Server) -> None:
    """`java TokenRoundTrip.java URL alice` with HttpClient at its defaults prints 200 and alice."""
    result = _run([_java(), str(JAVA_EXAMPLE), alice_server.base_url, "alice"])
    assert result.returncode == 0, result.stdout + result.stderr
    status, _, body = result.stdout.strip().partition(" ")
    assert status == "200"
    _assert_alice(body)


@pytest.mark.parametrize(
    "example",
    [
        EXAMPLES / "curl_round_trip.sh",
        EXAMPLES / "httpx_round_trip.py",
        JAVA_EXAMPLE,
        EXAMPLES / "licensed_app.py",
        EXAMPLES / "sdk_round_trip.py",
        EXAMPLES / "resource_fastapi.py",
        EXAMPLES / "resource_flask.py",
    ],
    ids=lambda p: p.name,
)
def test_the_readme_shows_each_example_verbatim(example: Path) -> None:
    """The README's API section is the code these tests run, not a copy that can drift."""
    readme = (ROOT / "README.md").read_text()
    assert example.read_text().strip() in readme, f"README lacks {example.name} verbatim"
