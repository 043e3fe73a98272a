"""The server's Prometheus metrics, defined once. `http/metrics.py` serves them.

With `gatehouse serve --workers N`, `PROMETHEUS_MULTIPROC_DIR` is set before any worker
imports prometheus_client, so each process writes its values to files there and a scrape
of any worker sums them (gauges: `livesum`, over live processes).
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

HTTP_REQUESTS = Counter(
    "gatehouse_http_requests",
    "HTTP requests answered, by route template, method and status.",
    ["route", "method", "status"],
)
HTTP_DURATION = Histogram(
    "gatehouse_http_request_duration_seconds",
    "Time from the request's start to its last response byte.",
    ["route", "method"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
LOGINS = Counter("gatehouse_logins", "Password logins, by outcome.", ["outcome"])
LOCKOUTS = Counter("gatehouse_lockouts", "Usernames locked after repeated failures.")
RATE_LIMITED = Counter(
    "gatehouse_rate_limited", "Requests refused by a limit, by limit.", ["limit"]
)
HASH_QUEUE_DEPTH = Gauge(
    "gatehouse_hash_queue_depth",
    "Password hashes running or waiting for a hashing thread.",
    multiprocess_mode="livesum",
)
