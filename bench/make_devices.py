"""The registered devices of the verify benchmark: their fingerprints, and their seeding.

Device i (0 <= i < COUNT) has the fingerprint sha256("bench-device-<i>").hexdigest() and the
label "bench device <i>", so every file and every process agrees on them without sharing
anything but COUNT.

    python bench/make_devices.py files COUNT CSV_FILE FINGERPRINTS_FILE
        the import file for `gatehouse devices import` (header `hardware_hash,label`, devices
        in order), and the fingerprints alone, one per line, for bench/wrk/verify.lua, in a
        fixed random order: machines check in in no relation to the order they were
        registered in, so consecutive requests must not find their rows (and the pages a
        last-seen write dirties) next to each other in the file

    python bench/make_devices.py seed COUNT [--batch N]
        register them in-process through the server's composition root (Settings from the
        same GATEHOUSE_* environment as the server, `build_services`, then
        `services.devices.register_many(..., by=Actor.cli())` in batches): what bench/run
        does when the `gatehouse devices import` command is not there

Both print one `DEVICES_RESULT key=value ...` line.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import hashlib
import random
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from gatehouse.server.audit.models import Actor
from gatehouse.server.config import Settings
from gatehouse.server.devices.models import NewDevice
from gatehouse.server.wiring import build_services


def fingerprint(i: int) -> str:
    return hashlib.sha256(f"bench-device-{i}".encode()).hexdigest()


def label(i: int) -> str:
    return f"bench device {i}"


def write_files(count: int, csv_path: Path, fingerprints_path: Path) -> None:
    started = time.perf_counter()
    values = [fingerprint(i) for i in range(count)]
    with csv_path.open("w", newline="") as out_csv:
        writer = csv.writer(out_csv, lineterminator="\n")
        writer.writerow(["hardware_hash", "label"])
        writer.writerows([value, label(i)] for i, value in enumerate(values))
    random.Random(0).shuffle(values)  # noqa: S311 - an order, not a secret
    fingerprints_path.write_text("".join(value + "\n" for value in values))
    print(f"DEVICES_RESULT files={count} seconds={time.perf_counter() - started:.2f}")


def batches(count: int, size: int) -> Iterator[range]:
    for start in range(0, count, size):
        yield range(start, min(start + size, count))


async def seed(count: int, batch: int) -> int:
    services = build_services(Settings())
    await services.start()  # as the server does; this also keeps SQLite's WAL checkpointed
    try:
        started = time.perf_counter()
        for part in batches(count, batch):
            rows = [(i + 2, NewDevice(fingerprint=fingerprint(i), label=label(i))) for i in part]
            await services.devices.register_many(rows, by=Actor.cli())
            await asyncio.sleep(0)  # let the background checkpointer in
        elapsed = time.perf_counter() - started
        await services.db.checkpoint()  # hand the server a short write-ahead log
    finally:
        await services.close()
    print(f"DEVICES_RESULT seeded={count} seconds={elapsed:.2f} batch={batch}")
    return 0


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    files = sub.add_parser("files", help="write the import CSV and the fingerprints file")
    files.add_argument("count", type=int)
    files.add_argument("csv", type=Path)
    files.add_argument("fingerprints", type=Path)
    seeding = sub.add_parser("seed", help="register the devices in-process")
    seeding.add_argument("count", type=int)
    seeding.add_argument("--batch", type=int, default=5000, help="devices per register_many")
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    if args.command == "files":
        write_files(args.count, args.csv, args.fingerprints)
        return 0
    return asyncio.run(seed(args.count, args.batch))


if __name__ == "__main__":
    sys.exit(main())
