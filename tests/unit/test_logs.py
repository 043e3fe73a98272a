"""The log formats of `gatehouse serve`, the access log's redaction, and the metric files
of dead workers."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

from gatehouse.server.context import RequestContext, current_request
from gatehouse.server.http.access_log import logged_path, redact_query
from gatehouse.server.logs import FIELDS, JsonFormatter, TextFormatter, logging_config
from gatehouse.server.metrics import forget_dead_processes


def _record(message: str, *args: object, **extra: object) -> logging.LogRecord:
    record = logging.LogRecord("gatehouse.test", logging.WARNING, __file__, 1, message, args, None)
    for key, value in extra.items():
        setattr(record, key, value)
    return record


def test_a_json_line_has_the_time_level_logger_message_and_no_request_id_outside_requests() -> None:
    """Outside a request a JSON line holds time (RFC 3339 UTC), level, logger, message and pid,
    and no request_id."""
    entry = json.loads(JsonFormatter().format(_record("pruned %d rows", 3)))

    assert entry["message"] == "pruned 3 rows"
    assert entry["level"] == "warning"
    assert entry["logger"] == "gatehouse.test"
    assert entry["pid"] == os.getpid()
    assert entry["time"].endswith("Z")
    assert len(entry["time"]) == len("2026-12-01T12:00:00.000Z")
    assert "request_id" not in entry


def test_a_json_line_written_during_a_request_carries_its_request_id() -> None:
    """A record formatted while a request is served has that request's id at the top level."""
    token = current_request.set(RequestContext(request_id="req-42", ip="203.0.113.7"))
    try:
        entry = json.loads(JsonFormatter().format(_record("hello")))
    finally:
        current_request.reset(token)

    assert entry["request_id"] == "req-42"


def test_user_controlled_text_stays_on_one_line_and_cannot_forge_fields() -> None:
    """A message with newlines, quotes and a fake field is one JSON line whose `level` and
    `request_id` come from the record, not from the text; fields never replace core keys."""
    hostile = 'x"\n{"level":"debug","request_id":"forged"}\r\u2028'
    line = JsonFormatter().format(
        _record("%s", hostile, **{FIELDS: {"user_agent": hostile, "level": "forged"}})
    )

    assert "\n" not in line
    assert "\r" not in line
    entry = json.loads(line)
    assert entry["message"] == hostile
    assert entry["user_agent"] == hostile
    assert entry["level"] == "warning"
    assert "request_id" not in entry


def test_an_exception_is_one_json_field_with_the_traceback() -> None:
    """A record with exc_info gets its traceback text under `exception`, still one line."""
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        record = _record("failed")
        record.exc_info = sys.exc_info()
    line = JsonFormatter().format(record)

    assert "\n" not in line
    entry = json.loads(line)
    assert "Traceback" in entry["exception"]
    assert "RuntimeError: boom" in entry["exception"]


def test_the_text_format_reads_like_uvicorn_and_names_the_request() -> None:
    """Text lines look like uvicorn's (`WARNING:  message`) and end with the request id
    during a request."""
    token = current_request.set(RequestContext(request_id="req-7"))
    try:
        line = TextFormatter().format(_record("slow"))
    finally:
        current_request.reset(token)

    assert line == "WARNING:  slow request_id=req-7"


def test_sensitive_query_values_are_redacted_and_the_rest_kept() -> None:
    """token, access_token, api_key, an encoded `%74oken`, any *key*, *secret* or *password*
    parameter loses its value; other parameters stay exactly as sent."""
    query = (
        b"token=t1&page=2&access_token=t2&API_KEY=k1&%74oken=t3&client_secret=s1"
        b"&new_password=p1&next=%2Fhome&flag"
    )

    redacted = redact_query(query)

    for secret in ("t1", "t2", "k1", "t3", "s1", "p1"):
        assert f"={secret}" not in redacted
    assert redacted == (
        "token=[redacted]&page=2&access_token=[redacted]&API_KEY=[redacted]&%74oken=[redacted]"
        "&client_secret=[redacted]&new_password=[redacted]&next=%2Fhome&flag"
    )


def test_the_logged_path_is_the_raw_target_with_a_redacted_query() -> None:
    """The path as sent (undecoded), `?`, then the redacted query; a query-less path alone."""
    scope = {"raw_path": b"/reset-password", "path": "/reset-password", "query_string": b""}
    assert logged_path(scope) == "/reset-password"
    scope["query_string"] = b"token=abcdef"
    assert logged_path(scope) == "/reset-password?token=[redacted]"


def test_logging_config_turns_the_access_log_off_and_uvicorns_own_off_always() -> None:
    """`--no-access-log` sets gatehouse.access above INFO; uvicorn's access logger never
    writes; audit events keep their bare JSON format."""
    on = logging_config("json", access_log=True)
    off = logging_config("text", access_log=False)

    assert on["loggers"]["gatehouse.access"]["level"] == "INFO"
    assert off["loggers"]["gatehouse.access"]["level"] == "WARNING"
    for config in (on, off):
        assert config["loggers"]["uvicorn.access"]["handlers"] == []
        assert config["formatters"]["audit"] == {"format": "%(message)s"}
        assert config["root"]["handlers"] == ["default"]


def test_live_gauge_files_of_a_dead_process_are_removed_and_a_live_ones_kept(
    tmp_path: Path,
) -> None:
    """forget_dead_processes drops the live-gauge files of a pid that no longer runs, and
    keeps those of a running process and every counter file."""
    finished = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    )
    dead = int(finished.stdout)
    names = [
        f"gauge_livesum_{dead}.db",
        f"gauge_liveall_{dead}.db",
        f"counter_{dead}.db",
        f"gauge_livesum_{os.getpid()}.db",
    ]
    for name in names:
        (tmp_path / name).write_bytes(b"")

    forget_dead_processes(str(tmp_path))

    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [f"counter_{dead}.db", f"gauge_livesum_{os.getpid()}.db"]
    )
