"""The server's Prometheus metrics, defined once, and what a scrape of them answers.

`http/routers/metrics.py` serves `MetricsScrape.render()` at `GET /metrics`. Services
update the metric objects below; `http/access_log.py` records the two HTTP ones.

With `gatehouse serve --workers N`, the CLI sets `PROMETHEUS_MULTIPROC_DIR` (a fresh 0700
directory) before uvicorn spawns the workers, so each worker's prometheus_client writes
its values to files there and a scrape answered by any worker sums them all (the gauge
below: `livesum`, over live processes; a worker marks its files dead when it closes, and a
scrape forgets those of workers that died without closing). With one process and no
such variable, the default registry is served.

`StateGauges` are the gauges that describe the database rather than a process (active
sessions, the mail outbox): read when scraped, cached for a few seconds, and answered once
by whichever process is scraped, never summed over workers.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from prometheus_client.registry import Collector

from gatehouse.server.clock import Clock

log = logging.getLogger("gatehouse.metrics")
MULTIPROCESS_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"

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


# How long a database-backed gauge is reused before the next scrape reads it again.
STATE_GAUGE_MAX_AGE_SECONDS = 5.0


@dataclass(slots=True)
class _StateGauge:
    name: str
    documentation: str
    read: Callable[[], Awaitable[int]]
    value: float | None = None


class StateGauges:
    """Gauges read from the database at scrape time, each at most once per a few seconds.

    `add()` is the hook: the composition root registers a reader per gauge (active sessions,
    the mail outbox depth). A reader that fails (the database down) leaves its gauge out of
    that scrape rather than answering a stale number; the rest of the scrape still answers.
    """

    def __init__(self, clock: Clock, *, max_age_seconds: float = STATE_GAUGE_MAX_AGE_SECONDS):
        self._clock = clock
        self._max_age = max_age_seconds
        self._gauges: dict[str, _StateGauge] = {}
        self._read_at: float | None = None
        self._lock = asyncio.Lock()

    def add(self, name: str, documentation: str, read: Callable[[], Awaitable[int]]) -> None:
        """Expose `name` as a gauge whose value `read()` returns (a count from storage)."""
        if name in self._gauges:
            raise ValueError(f"state gauge {name} is already registered")
        self._gauges[name] = _StateGauge(name, documentation, read)
        self._read_at = None

    @property
    def names(self) -> frozenset[str]:
        return frozenset(self._gauges)

    async def refresh(self) -> None:
        """Read every gauge again unless the last read is younger than the maximum age."""
        async with self._lock:  # concurrent scrapes share one read
            now = self._clock.now().timestamp()
            if self._read_at is not None and 0 <= now - self._read_at < self._max_age:
                return
            for gauge in self._gauges.values():
                try:
                    gauge.value = float(await gauge.read())
                except Exception:  # one gauge's failure must not fail the scrape
                    gauge.value = None
                    log.warning("reading the gauge %s failed", gauge.name, exc_info=True)
            self._read_at = now

    def collect(self) -> Iterator[Metric]:
        """The prometheus_client collector protocol: the values of the last refresh."""
        for gauge in self._gauges.values():
            if gauge.value is not None:
                family = GaugeMetricFamily(gauge.name, gauge.documentation)
                family.add_metric([], gauge.value)
                yield family


class _Together(Collector):
    """Several collectors as one, so one registry renders them in one exposition."""

    def __init__(self, *collectors: Collector | StateGauges) -> None:
        self._collectors = collectors

    def collect(self) -> Iterable[Metric]:
        for collector in self._collectors:
            yield from collector.collect()


_LIVE_GAUGE_FILE = re.compile(r"gauge_live[a-z]+_(\d+)\.db")


def forget_dead_processes(directory: str) -> None:
    """Mark dead every process whose live-gauge files remain but which no longer runs.

    A worker that closes marks itself (`MetricsScrape.close`); one that was killed cannot,
    and uvicorn starts a new worker (a new pid) in its place. Without this, a `livesum`
    gauge would go on adding the dead worker's last value. The workers are children of one
    `gatehouse serve` on this host, so a pid that does not answer signal 0 is gone.
    """
    pids = set()
    for name in os.listdir(directory):
        if match := _LIVE_GAUGE_FILE.fullmatch(name):
            pids.add(int(match.group(1)))
    for pid in pids:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            mark_process_dead(pid, directory)  # type: ignore[no-untyped-call] # untyped upstream
        except PermissionError:  # alive, under another user
            pass


class MetricsScrape:
    """What `GET /metrics` answers, for this process or, in multiprocess mode, all workers.

    Args:
        gauges: the database-backed gauges, answered once whichever worker is scraped.
        multiprocess_dir: `PROMETHEUS_MULTIPROC_DIR` when set (several workers); None for
            one process, whose default registry is served.
    """

    def __init__(self, gauges: StateGauges, *, multiprocess_dir: str | None) -> None:
        self.gauges = gauges
        self._dir = multiprocess_dir
        source: Collector = REGISTRY
        if multiprocess_dir:
            # Reads every worker's files at each collect; not registered anywhere else.
            source = MultiProcessCollector(None, path=multiprocess_dir)  # type: ignore[no-untyped-call] # untyped upstream
        self._registry = CollectorRegistry(auto_describe=False)
        self._registry.register(_Together(source, gauges))

    @classmethod
    def from_environment(cls, gauges: StateGauges) -> MetricsScrape:
        """Multiprocess mode exactly when prometheus_client itself is in it: the variable
        is set (prometheus_client reads it when first imported)."""
        return cls(gauges, multiprocess_dir=os.environ.get(MULTIPROCESS_DIR_ENV) or None)

    @property
    def multiprocess(self) -> bool:
        return self._dir is not None

    async def render(self) -> bytes:
        """The Prometheus text exposition of every metric (the state gauges refreshed)."""
        await self.gauges.refresh()
        if self._dir is not None:
            forget_dead_processes(self._dir)
        return generate_latest(self._registry)

    def close(self) -> None:
        """At a worker's exit: its live gauges stop counting (its counters stay summed)."""
        if self._dir is not None:
            mark_process_dead(os.getpid(), self._dir)  # type: ignore[no-untyped-call] # untyped upstream
