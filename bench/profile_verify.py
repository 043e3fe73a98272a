"""Where the CPU of one `POST /devices/verify` goes, in-process (no sockets, no uvicorn).

Builds the server's services and app (`build_services`, `create_app`) on a fresh SQLite
file with a test hashing profile, registers COUNT devices (bench/make_devices.py's
fingerprints), and then, with CPU time of the whole process (threads included: the
background checkpointer counts), minimum over batches of N calls:

1. calls the ASGI app directly for `GET /healthz`, `POST /devices/verify` spread over
   devices never verified before, in random order (as bench/run: a cache miss and a due
   last-seen write each), the same with the last-seen writes switched off, and one device
   all the time (warm). Each call is followed by one `asyncio.sleep(0)`, so background work
   runs as it does between requests in the server (the last-seen writes, and the
   invalidation watcher, without which the principal cache stops answering);
2. times the pieces of a verify one by one;
3. with `--profile`, runs cProfile over N spread verifies through the app.

    python bench/profile_verify.py [--count 100000] [--requests 2000] [--profile]

Uvicorn's own share (HTTP parsing, the access log line, the socket) is not in here: it is
what bench/run's `/healthz` costs beyond the in-process `/healthz`.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import io
import json
import pstats
import random
import sqlite3
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from typing import Any
from uuid import UUID

from gatehouse.server.audit.models import Actor
from gatehouse.server.config import Settings
from gatehouse.server.devices.models import NewDevice
from gatehouse.server.devices.service import _BY_FINGERPRINT as CACHE_PREFIX
from gatehouse.server.devices.service import _loaded
from gatehouse.server.http.app import create_app
from gatehouse.server.http.device_schemas import MachineIdentity
from gatehouse.server.storage import devices as device_storage
from gatehouse.server.storage.migrate import upgrade
from gatehouse.server.wiring import Services, build_services
from gatehouse.verifier import DEVICE_KIND
from make_devices import fingerprint, label

APP_BATCHES = 5
PIECE_BATCHES = 3
SECRET = "profile-verify-bench-secret-0123456789abcdef"

Work = Callable[[], Awaitable[object]]


class Asgi:
    """A minimal HTTP/1.1 client for an ASGI app: one request, its status and body."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, method: str, path: str, body: bytes = b"") -> tuple[int, bytes]:
        headers = [(b"host", b"127.0.0.1:8000")]
        if body:
            headers += [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ]
        scope = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": "1.1",
            "method": method,
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "query_string": b"",
            "root_path": "",
            "headers": headers,
            "client": ("127.0.0.1", 50000),
            "server": ("127.0.0.1", 8000),
            "state": {},
        }
        received = False
        status = 0
        chunks: list[bytes] = []

        async def receive() -> dict[str, Any]:
            nonlocal received
            if not received:
                received = True
                return {"type": "http.request", "body": body, "more_body": False}
            await asyncio.sleep(3600)
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        await self.app(scope, receive, send)
        return status, b"".join(chunks)


class Bench:
    def __init__(self, services: Services, count: int, n: int) -> None:
        self.services = services
        self.devices = services.devices
        self.repo = services.devices._devices
        self.count = count
        self.n = n
        self.client = Asgi(create_app(services=services))
        # Device 0 is the hot one; the others are handed out once each, in random order.
        order = list(range(1, count))
        random.Random(1).shuffle(order)  # noqa: S311 - an order, not a secret
        self._fresh: Iterator[int] = iter(order)

    def fresh(self) -> int:
        """A device no measurement has used yet."""
        try:
            return next(self._fresh)
        except StopIteration:
            sys.exit("profile_verify: out of fresh devices; raise --count or lower --requests")

    def digest(self, i: int) -> bytes:
        return self.devices.present(fingerprint(i), None).fingerprint_digest

    async def per_call_us(self, work: Work, *, settle: bool = True) -> float:
        """CPU microseconds (whole process) per call of `work`, over n calls."""
        started = time.process_time()
        for _ in range(self.n):
            await work()
            if settle:
                await asyncio.sleep(0)
        await asyncio.sleep(0)
        return 1e6 * (time.process_time() - started) / self.n

    async def verify_app(self, i: int) -> None:
        body = json.dumps({"fingerprint": fingerprint(i)}).encode()
        status, answer = await self.client("POST", "/devices/verify", body)
        assert status == 200, (status, answer)


async def seed(services: Services, count: int) -> float:
    started = time.perf_counter()
    for start in range(0, count, 5000):
        rows = [
            (i + 2, NewDevice(fingerprint=fingerprint(i), label=label(i)))
            for i in range(start, min(start + 5000, count))
        ]
        await services.devices.register_many(rows, by=Actor.cli())
        await asyncio.sleep(0)
    await services.db.checkpoint()
    return time.perf_counter() - started


async def through_app(bench: Bench) -> None:
    async def healthz() -> None:
        status, _ = await bench.client("GET", "/healthz")
        assert status == 200

    async def spread() -> None:
        await bench.verify_app(bench.fresh())

    usage = bench.devices._usage

    async def spread_no_write() -> None:
        usage.due = lambda *_a, **_k: False  # type: ignore[method-assign]
        try:
            await bench.verify_app(bench.fresh())
        finally:
            del usage.due

    async def hot() -> None:
        await bench.verify_app(0)

    runs: dict[str, Work] = {
        "GET /healthz": healthz,
        "POST /devices/verify, spread": spread,
        "POST /devices/verify, spread, no last-seen write": spread_no_write,
        "POST /devices/verify, one device (hot)": hot,
    }
    results: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(APP_BATCHES):
        for name, work in runs.items():
            results[name].append(await bench.per_call_us(work))
    print(f"\n== through the ASGI app: CPU us per request (min of {APP_BATCHES} x {bench.n})")
    for name, values in results.items():
        shown = " ".join(f"{v:.0f}" for v in values)
        print(f"  {name:50s} {min(values):7.0f}   (batches: {shown})")


async def pieces(bench: Bench) -> None:  # noqa: PLR0915 - one list of small measurements
    services, devices, repo, n = bench.services, bench.devices, bench.repo, bench.n
    issuer, cache, clock, db = devices._issuer, devices._cache, services.clock, services.db
    hot_fp, hot_body = fingerprint(0), json.dumps({"fingerprint": fingerprint(0)}).encode()
    record = await repo.find_by_fingerprint(bench.digest(0))
    assert record is not None
    keyset = await issuer._keys.current()
    signing_key = keyset.signing_key
    assert signing_key is not None
    now = int(time.time())
    license_claims = {
        "iss": issuer.issuer,
        "sub": str(record.device.id),
        "jti": uuid.uuid4().hex,
        "fingerprint": hot_fp,
        "device_id": str(record.device.id),
        "license_id": None,
        "product": None,
        "features": [],
        "iat": now,
        "exp": now + 7 * 86400,
    }
    message = b"x" * 420  # about what a license file signs
    by = Actor.system()
    # The SQL of the cache-miss read, to run straight on the driver (sqlite3's own cost).
    engine = db._backend._engine  # type: ignore[attr-defined]
    miss_sql = str(device_storage._BY_FINGERPRINT.compile(engine)).replace(":digest", "?")
    reads = iter([bench.digest(bench.fresh()) for _ in range(2 * PIECE_BATCHES * n)])
    # Devices to write to, in random order; finding their ids reads them (untimed).
    write_ids: list[UUID] = []
    for _ in range(2 * PIECE_BATCHES * n):
        found = await repo.find_by_fingerprint(bench.digest(bench.fresh()))
        assert found is not None
        write_ids.append(found.device.id)
    writes = iter(write_ids)
    fill_keys = iter(range(10**9))
    calls = iter(range(10**9))

    async def validate() -> None:
        MachineIdentity.model_validate_json(hot_body)

    async def present() -> None:
        devices.present(hot_fp, None)

    async def raw_sign() -> None:
        signing_key.private_key.sign(message)

    async def jwt_sign() -> None:
        await issuer.sign(license_claims, typ="gatehouse-license+jwt")

    async def issue() -> None:
        await issuer.issue(subject=record.device.id, session_id=None, roles=(), kind=DEVICE_KIND)

    async def cache_hit() -> None:
        cache.lookup(CACHE_PREFIX + bench.digest(0).hex(), clock.now())

    async def cache_fill() -> None:
        async def load() -> Any:
            return _loaded(record)

        await cache.fill(("profile", next(fill_keys)), load)

    async def empty_read() -> None:
        async with db.read():
            pass

    async def repo_read() -> None:
        await repo.find_by_fingerprint(next(reads))

    async def raw_read() -> None:
        async with db.read() as conn:
            raw = conn._conn.connection.driver_connection  # type: ignore[attr-defined]
            assert isinstance(raw, sqlite3.Connection)
            raw.execute(miss_sql, (next(reads),)).fetchall()

    async def touch_each() -> None:
        stamp = clock.now()
        await repo.touch({next(writes): (stamp, stamp)})

    async def touch_batched() -> None:
        if next(calls) % 100 == 0:
            stamp = clock.now()
            await repo.touch({next(writes): (stamp, stamp) for _ in range(100)})

    async def verify_hot() -> None:
        await devices.verify(hot_fp, None, by=by)

    async def verify_spread() -> None:
        await devices.verify(fingerprint(bench.fresh()), None, by=by)

    rows: list[tuple[str, Work, bool]] = [
        ("pydantic: MachineIdentity.model_validate_json", validate, False),
        ("present(): HMAC-SHA256 of the fingerprint", present, False),
        ("Ed25519 sign of 420 bytes (cryptography)", raw_sign, False),
        ("issuer.sign: a license file (PyJWT + Ed25519)", jwt_sign, False),
        ("issuer.issue: a device token", issue, False),
        ("principal cache: a hit", cache_hit, False),
        ("principal cache: fill + put of a loaded record", cache_fill, False),
        ("read: an empty db.read() transaction", empty_read, False),
        ("read: repo.find_by_fingerprint, a device never read", repo_read, False),
        ("read: the same SQL straight to sqlite3, in db.read()", raw_read, False),
        ("service: devices.verify, one device (hot)", verify_hot, True),
        ("service: devices.verify, spread (writes in background)", verify_spread, True),
    ]
    print(f"\n== the pieces: CPU us per call (min of {PIECE_BATCHES} x {n})")
    for name, work, settle in rows:
        values = [await bench.per_call_us(work, settle=settle) for _ in range(PIECE_BATCHES)]
        print(f"  {name:58s} {min(values):7.1f}")

    gc_values = []
    for _ in range(PIECE_BATCHES):
        gc.disable()
        try:
            gc_values.append(await bench.per_call_us(verify_spread))
        finally:
            gc.enable()
    print(f"  {'service: devices.verify, spread, gc disabled':58s} {min(gc_values):7.1f}")

    for name, work in (
        ("write: repo.touch, one transaction per device", touch_each),
        ("write: one UPDATE executemany per 100 devices", touch_batched),
    ):
        values, frames = [], []
        for _ in range(PIECE_BATCHES):
            await db.checkpoint()  # start each batch with an empty WAL (untimed)
            started = time.process_time()
            for _ in range(n):
                await work()
                await asyncio.sleep(0)
            copied = await db.checkpoint()  # the background checkpointer's share, timed
            values.append(1e6 * (time.process_time() - started) / n)
            frames.append(copied / n)
        print(
            f"  {name + ' (+ checkpoint)':58s} {min(values):7.1f}"
            f"   ({min(frames):.2f} WAL pages of 4 KiB per device)"
        )


def profile(bench: Bench, top: int) -> Callable[[], Awaitable[None]]:
    async def run() -> None:
        async def spread() -> None:
            await bench.verify_app(bench.fresh())

        profiler = cProfile.Profile()
        profiler.enable()
        await bench.per_call_us(spread)
        profiler.disable()
        for order in ("tottime", "cumulative"):
            out = io.StringIO()
            pstats.Stats(profiler, stream=out).sort_stats(order).print_stats(top)
            print(f"\n== cProfile of {bench.n} spread verifies through the app, by {order}")
            print(out.getvalue())

    return run


async def main(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory() as data_dir:
        settings = Settings(
            data_dir=data_dir,
            password_hashing="test",  # noqa: S106 - a hashing profile, not a password
            secret_key=SECRET,
        )
        services = build_services(settings)
        await upgrade(services.db)
        await services.keys.ensure_signing_key()
        await services.start()
        try:
            seconds = await seed(services, args.count)
            print(f"seeded {args.count} devices in-process in {seconds:.1f} s")
            bench = Bench(services, args.count, args.requests)
            await bench.verify_app(0)
            await through_app(bench)
            await pieces(bench)
            if args.profile:
                await profile(bench, args.top)()
        finally:
            await services.close()
    return 0


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=100_000, help="registered devices")
    parser.add_argument("--requests", type=int, default=2000, help="calls per batch")
    parser.add_argument("--profile", action="store_true", help="cProfile spread verifies")
    parser.add_argument("--top", type=int, default=35, help="functions to print")
    return parser.parse_args()


if __name__ == "__main__":
    sys.exit(asyncio.run(main(parse_args())))
