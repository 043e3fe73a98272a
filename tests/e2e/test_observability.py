"""End to end: the JSON log and /metrics of a real `gatehouse serve --workers 2` on PostgreSQL."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.harness import Deployment, Server, file_mode

SECRET = "observability-e2e-secret-" + "o" * 40
REQUESTS = 40
MAX_SCRAPES = 40
RESTART_TIMEOUT_SECONDS = 15.0


@pytest.fixture(scope="module")
def two_workers(
    tmp_path_factory: pytest.TempPathFactory, module_postgres_url: str
) -> Iterator[Server]:
    """`gatehouse serve --workers 2` on a migrated PostgreSQL database, JSON logs (default)."""
    deployment = Deployment.fresh(tmp_path_factory.mktemp("observability"))
    deployment.env.update(GATEHOUSE_DATABASE_URL=module_postgres_url, GATEHOUSE_SECRET_KEY=SECRET)
    upgraded = deployment.cli("db", "upgrade")
    assert upgraded.returncode == 0, upgraded.stderr
    with deployment.serve(workers=2) as server:
        assert len(server.worker_pids()) == 2, server.log()
        yield server


def _get(server: Server, path: str) -> tuple[httpx.Response, int]:
    """GET over a new TCP connection (so the kernel may hand it to either worker)."""
    with server.client() as client:
        response = client.get(path)
        return response, server.serving_pid(response)


def _requests_total(text: str, route: str) -> float:
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "gatehouse_http_requests_total" and sample.labels["route"] == route
    )


def _log_entries(server: Server) -> list[dict[str, Any]]:
    entries = []
    for line in server.log_lines():
        entry = json.loads(line)
        assert isinstance(entry, dict), line
        entries.append(entry)
    return entries


def test_requests_spread_over_two_workers_sum_to_their_number_on_any_scrape(
    two_workers: Server,
) -> None:
    """N requests answered by both workers show as N in gatehouse_http_requests_total on a
    scrape, whichever worker answers the scrape (both do, in turn)."""
    server = two_workers
    workers = server.worker_pids()
    served_by = set()
    for _ in range(REQUESTS):
        response, pid = _get(server, "/readyz")
        assert response.status_code == 200, response.text
        served_by.add(pid)
    assert served_by == workers

    scraped_by = set()
    for _ in range(MAX_SCRAPES):
        response, pid = _get(server, "/metrics")
        assert response.status_code == 200
        assert _requests_total(response.text, "/readyz") == REQUESTS
        scraped_by.add(pid)
        if scraped_by == workers:
            break
    assert scraped_by == workers


def test_every_line_is_json_and_request_lines_carry_the_answered_request_id(
    two_workers: Server,
) -> None:
    """Every line the server writes is one JSON object; each request has one access line
    whose request_id is the X-Request-ID answered and whose pid is the worker that served it;
    a token in the query string is not in the log."""
    server = two_workers
    answered: dict[str, int] = {}
    for index in range(10):
        response, pid = _get(server, f"/.well-known/jwks.json?token=e2e-secret-{index}&n={index}")
        assert response.status_code == 200
        answered[response.headers["x-request-id"]] = pid

    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not set(answered) <= {
        e.get("request_id") for e in _log_entries(server)
    }:
        time.sleep(0.05)
    entries = _log_entries(server)

    access = [e for e in entries if e.get("logger") == "gatehouse.access"]
    assert access, server.log()
    assert all(isinstance(e.get("request_id"), str) and e["request_id"] for e in access)
    for request_id, pid in answered.items():
        (line,) = [e for e in access if e["request_id"] == request_id]
        assert line["route"] == "/.well-known/jwks.json"
        assert line["status"] == 200
        assert line["pid"] == pid
        assert line["path"].startswith("/.well-known/jwks.json?token=[redacted]&n=")
        assert line["client_ip"] == "127.0.0.1"
    assert "e2e-secret-" not in server.log()
    started = [e for e in entries if e.get("message") == "Application startup complete."]
    assert {e["pid"] for e in started} == server.worker_pids()
    assert all("request_id" not in e for e in started)


def test_a_killed_workers_counts_stay_in_the_sum_and_its_replacement_adds_to_it(
    two_workers: Server,
) -> None:
    """After a worker is killed (SIGKILL) and uvicorn starts another, a scrape still counts
    the dead worker's requests; the multiprocess directory is private (0700)."""
    server = two_workers
    victim = min(server.worker_pids())
    environ = Path(f"/proc/{victim}/environ").read_bytes().split(b"\0")
    (entry,) = [e for e in environ if e.startswith(b"PROMETHEUS_MULTIPROC_DIR=")]
    directory = Path(os.fsdecode(entry.split(b"=", 1)[1]))
    assert file_mode(directory) == 0o700

    before = _requests_total(_get(server, "/metrics")[0].text, "/healthz")
    for _ in range(MAX_SCRAPES):  # some /healthz on the victim, so its files hold counts
        response, pid = _get(server, "/healthz")
        if pid == victim:
            break
    else:
        pytest.fail("no request reached the worker to be killed")
    counted = _requests_total(_get(server, "/metrics")[0].text, "/healthz")
    assert counted > before

    os.kill(victim, signal.SIGKILL)
    deadline = time.monotonic() + RESTART_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        workers = server.worker_pids()
        if len(workers) == 2 and victim not in workers:
            break
        time.sleep(0.1)
    assert len(server.worker_pids()) == 2, server.log()
    assert victim not in server.worker_pids(), server.log()

    response, _ = _get(server, "/healthz")
    assert response.status_code == 200
    after = _requests_total(_get(server, "/metrics")[0].text, "/healthz")
    assert after >= counted + 1


def test_serve_removes_its_metrics_directory_when_it_stops(
    deployment: Deployment, postgres_url: str
) -> None:
    """The directory `serve --workers 2` made for the workers' metric files is gone once
    the server has stopped."""
    deployment.env.update(GATEHOUSE_DATABASE_URL=postgres_url, GATEHOUSE_SECRET_KEY=SECRET)
    assert deployment.cli("db", "upgrade").returncode == 0
    with deployment.serve(workers=2) as server:
        (worker, *_) = server.worker_pids()
        environ = Path(f"/proc/{worker}/environ").read_bytes().split(b"\0")
        (entry,) = [e for e in environ if e.startswith(b"PROMETHEUS_MULTIPROC_DIR=")]
        directory = Path(os.fsdecode(entry.split(b"=", 1)[1]))
        assert directory.is_dir()
        assert any(directory.iterdir())

    assert not directory.exists()


def test_the_text_format_writes_readable_lines_naming_the_request(deployment: Deployment) -> None:
    """GATEHOUSE_LOG_FORMAT=text: uvicorn-style lines, not JSON; the access line shows the
    redacted path, the status and the request id answered."""
    with deployment.serve(env={"GATEHOUSE_LOG_FORMAT": "text"}) as server:
        response, _ = _get(server, "/healthz?token=text-secret")
        request_id = response.headers["x-request-id"]
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and request_id not in server.log():
            time.sleep(0.05)
        lines = server.log().splitlines()

    assert "INFO:     Application startup complete." in lines
    (access,) = [line for line in lines if request_id in line]
    assert access.startswith('INFO:     127.0.0.1 - "GET /healthz?token=[redacted]" 200 ')
    assert access.endswith(f" ms request_id={request_id}")
    assert not any(line.startswith("{") and '"logger"' in line for line in lines)
    assert "text-secret" not in "\n".join(lines)


def test_no_access_log_writes_no_access_line_but_still_counts(deployment: Deployment) -> None:
    """`serve --no-access-log`: requests leave no access line, and /metrics counts them."""
    with deployment.serve("--no-access-log") as server:
        for _ in range(3):
            assert _get(server, "/readyz")[0].status_code == 200
        metrics = _get(server, "/metrics")[0].text
        entries = _log_entries(server)

    assert _requests_total(metrics, "/readyz") == 3
    assert [e for e in entries if e.get("logger") == "gatehouse.access"] == []
    assert any(e.get("message") == "Application startup complete." for e in entries)
