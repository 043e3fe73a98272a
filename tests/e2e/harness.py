"""Run the real `gatehouse` console script as subprocesses and talk to it over real TCP.

A `Deployment` is one fresh data dir plus the environment every command of a test shares.
`Deployment.serve()` starts `gatehouse serve` on a free loopback port, waits (bounded) until
it answers, and always ends the whole process group afterwards, workers included.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

PASSWORD = "correct horse battery"
STARTUP_TIMEOUT_SECONDS = 20.0
SHUTDOWN_TIMEOUT_SECONDS = 10.0
CLI_TIMEOUT_SECONDS = 30.0
HTTP_TIMEOUT_SECONDS = 10.0


def gatehouse_executable() -> str:
    """The installed console script: on PATH, else next to this interpreter."""
    return shutil.which("gatehouse") or str(Path(sys.executable).parent / "gatehouse")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def file_mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


def _clean_environment() -> dict[str, str]:
    """The test runner's environment without any GATEHOUSE_* setting leaking in."""
    return {k: v for k, v in os.environ.items() if not k.startswith("GATEHOUSE_")}


@dataclass
class Server:
    """A running `gatehouse serve` process group."""

    process: subprocess.Popen[bytes]
    port: int
    log_path: Path

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client(self) -> httpx.Client:
        """A client with its own pool, so its first request opens a fresh TCP connection."""
        return httpx.Client(base_url=self.base_url, timeout=HTTP_TIMEOUT_SECONDS)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def log_lines(self) -> list[str]:
        """The log's complete lines (a line still being written is left out)."""
        text = self.log()
        return text[: text.rfind("\n") + 1].splitlines()

    def log_entries(self) -> list[dict[str, Any]]:
        """The log as JSON objects, one per line (GATEHOUSE_LOG_FORMAT=json, the default)."""
        return [json.loads(line) for line in self.log_lines() if line]

    def access_lines(self) -> list[dict[str, Any]]:
        """The access log's entries (logger `gatehouse.access`)."""
        return [e for e in self.log_entries() if e.get("logger") == "gatehouse.access"]

    def descendants(self) -> list[int]:
        """Process ids below the server process (uvicorn workers and helpers)."""
        found: list[int] = []
        pending = [self.process.pid]
        while pending:
            pid = pending.pop()
            with contextlib.suppress(OSError):
                for task in os.listdir(f"/proc/{pid}/task"):
                    children = Path(f"/proc/{pid}/task/{task}/children").read_text().split()
                    for child in map(int, children):
                        found.append(child)
                        pending.append(child)
        return found

    def worker_pids(self) -> set[int]:
        """The uvicorn worker processes (multiprocessing children, not the resource tracker)."""
        workers = set()
        for pid in self.descendants():
            with contextlib.suppress(OSError):
                if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes():
                    workers.add(pid)
        return workers

    def serving_pid(self, response: httpx.Response) -> int:
        """The process that holds the server end of the (still open) connection of `response`.

        Linux only: the client's port finds the server socket's inode in /proc/net/tcp, and
        the inode finds the process whose file descriptors include that socket.
        """
        stream = response.extensions["network_stream"]
        client_port = stream.get_extra_info("client_addr")[1]
        inode = _server_socket_inode(self.port, client_port)
        target = f"socket:[{inode}]"
        for pid in [self.process.pid, *self.descendants()]:
            with contextlib.suppress(OSError):
                for fd in os.listdir(f"/proc/{pid}/fd"):
                    with contextlib.suppress(OSError):
                        if os.readlink(f"/proc/{pid}/fd/{fd}") == target:
                            return pid
        raise AssertionError(f"no server process holds the connection from port {client_port}")


def _server_socket_inode(server_port: int, client_port: int) -> str:
    lines = Path("/proc/net/tcp").read_text().splitlines()[1:]
    for line in lines:
        parts = line.split()
        local_port = int(parts[1].rsplit(":", 1)[1], 16)
        remote_port = int(parts[2].rsplit(":", 1)[1], 16)
        if local_port == server_port and remote_port == client_port:
            return parts[9]
    raise AssertionError(f"no server socket for a connection from port {client_port}")


@dataclass
class Deployment:
    """One fresh data dir and the environment shared by every command of a test."""

    workdir: Path
    data_dir: Path
    env: dict[str, str] = field(default_factory=dict)

    @classmethod
    def fresh(cls, root: Path) -> Deployment:
        data_dir = root / "state" / "gatehouse"
        env = {"GATEHOUSE_DATA_DIR": str(data_dir), "GATEHOUSE_PASSWORD_HASHING": "test"}
        return cls(workdir=root, data_dir=data_dir, env=env)

    def environment(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        return {**_clean_environment(), **self.env, **(extra or {})}

    def cli(
        self, *args: str, stdin: str | None = None, env: Mapping[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run one `gatehouse` command to completion (bounded) and capture its output."""
        stdin_args: dict[str, Any] = (
            {"input": stdin} if stdin is not None else {"stdin": subprocess.DEVNULL}
        )
        return subprocess.run(  # noqa: S603 - our own console script, fixed arguments
            [gatehouse_executable(), *args],
            capture_output=True,
            text=True,
            env=self.environment(env),
            cwd=self.workdir,
            timeout=CLI_TIMEOUT_SECONDS,
            check=False,
            **stdin_args,
        )

    def cli_concurrently(self, *commands: Sequence[str]) -> list[subprocess.CompletedProcess[str]]:
        """Run independent commands at the same time (each start costs about a second)."""
        with ThreadPoolExecutor(max_workers=len(commands)) as pool:
            return list(pool.map(lambda args: self.cli(*args), commands))

    @contextlib.contextmanager
    def serve(
        self, *args: str, workers: int = 1, env: Mapping[str, str] | None = None
    ) -> Iterator[Server]:
        """Start `gatehouse serve`, wait until every worker is up, and stop it afterwards."""
        port = free_port()
        log_path = self.workdir / f"serve-{port}.log"
        command = [gatehouse_executable(), "serve", "--port", str(port), *args]
        if workers != 1:
            command += ["--workers", str(workers)]
        with log_path.open("wb") as log:
            process = subprocess.Popen(  # noqa: S603 - our own console script, fixed arguments
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.environment(env),
                cwd=self.workdir,
                start_new_session=True,
            )
            server = Server(process=process, port=port, log_path=log_path)
            try:
                _wait_until_serving(server, workers)
                yield server
            finally:
                _stop(process)


def _wait_until_serving(server: Server, workers: int) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        code = server.process.poll()
        if code is not None:
            raise AssertionError(f"gatehouse serve exited with {code}:\n{server.log()}")
        started = server.log().count("Application startup complete.")
        if started >= workers:
            try:
                with server.client() as client:
                    if client.get("/healthz", timeout=1.0).status_code == 200:
                        return
            except httpx.TransportError:
                pass
        time.sleep(0.1)
    raise AssertionError(
        f"gatehouse serve did not answer within {STARTUP_TIMEOUT_SECONDS} s:\n{server.log()}"
    )


def _stop(process: subprocess.Popen[bytes]) -> None:
    """End the server's whole process group (it leads its own session): TERM, then KILL."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=SHUTDOWN_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=SHUTDOWN_TIMEOUT_SECONDS)
    # Workers may outlive the parent for a moment; make sure none is left behind.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)


# --- HTTP steps --------------------------------------------------------------------------


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def eventually_status(client: httpx.Client, headers: dict[str, str], status: int) -> bool:
    """Poll GET /users/me with `headers` for up to 3 s until it answers `status`."""
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        if client.get("/users/me", headers=headers).status_code == status:
            return True
        time.sleep(0.05)
    return False


def register(client: httpx.Client, username: str, password: str = PASSWORD) -> dict[str, Any]:
    response = client.post("/auth/register", json={"username": username, "password": password})
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def login(client: httpx.Client, username: str, password: str = PASSWORD) -> str:
    """Log in and return the access token."""
    response = client.post("/auth/login", json={"username": username, "password": password})
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token


def assert_clean_failure(result: subprocess.CompletedProcess[str], code: int) -> None:
    """The command exited with `code`, printed errors only as lines, and no traceback."""
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    assert result.stderr.startswith("error: "), result.stderr
