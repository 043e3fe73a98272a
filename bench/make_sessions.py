"""Mint a pool of unused refresh tokens for the refresh benchmark, one per line.

Runs in-process against the server's own database through its composition root (Settings
from the same GATEHOUSE_* environment as the server, then `build_services`), so each token
is exactly what a login issues: a fresh session whose first refresh token is still unused.

The pool is either a fixed `--count`, or sized with `--cover-seconds S`: mint a first batch,
measure the rate, and mint `rate * S * headroom` tokens in all. A refresh does everything
opening a session does (one write transaction, one signed access token) plus a read and an
HTTP round trip, so the server cannot rotate tokens faster than this process mints them;
the headroom covers the uneven split between wrk threads and run-to-run noise.

    python bench/make_sessions.py USERNAME OUT_FILE (--count N | --cover-seconds S)
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import sys
import time
from pathlib import Path

from gatehouse.server.accounts.models import User
from gatehouse.server.config import Settings
from gatehouse.server.sessions.models import ClientInfo
from gatehouse.server.sessions.service import SessionService
from gatehouse.server.wiring import build_services

CONCURRENCY = 8
WARM_UP = 100  # not timed: first connections, first statement compilations
FIRST_BATCH = 500  # timed, to estimate the minting rate


async def mint(sessions: SessionService, user: User, count: int) -> list[str]:
    """Open `count` sessions for `user`, CONCURRENCY at a time; return their refresh tokens."""
    client = ClientInfo(device_name="bench")
    tokens: list[str] = []

    async def worker(share: int) -> None:
        for _ in range(share):
            pair = await sessions.open(user, client)
            tokens.append(pair.refresh_token)
            # SQLite runs on this thread and never yields by itself: let the background
            # checkpointer in, as the server's requests do between transactions.
            await asyncio.sleep(0)

    shares = [count // CONCURRENCY + (i < count % CONCURRENCY) for i in range(CONCURRENCY)]
    await asyncio.gather(*(worker(share) for share in shares))
    return tokens


async def main(args: argparse.Namespace) -> int:
    services = build_services(Settings())
    await services.start()  # as the server does; this also keeps SQLite's WAL checkpointed
    try:
        user = await services.accounts.find_by_username(args.username)
        if user is None:
            print(f"make_sessions: no user {args.username!r}", file=sys.stderr)
            return 1
        started = time.perf_counter()
        if args.count is not None:
            tokens = await mint(services.sessions, user, args.count)
        else:
            tokens = await mint(services.sessions, user, WARM_UP)
            timed = time.perf_counter()
            tokens += await mint(services.sessions, user, FIRST_BATCH)
            rate = FIRST_BATCH / (time.perf_counter() - timed)
            target = max(args.min_count, math.ceil(rate * args.cover_seconds * args.headroom))
            tokens += await mint(services.sessions, user, max(0, target - len(tokens)))
        elapsed = time.perf_counter() - started
        await services.db.checkpoint()  # hand the server a short write-ahead log
    finally:
        await services.close()

    # The tokens are live credentials: keep the file private to this user.
    fd = os.open(args.out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write("\n".join(tokens) + "\n")
    print(
        f"make_sessions: minted {len(tokens)} refresh tokens in {elapsed:.1f} s "
        f"({len(tokens) / elapsed:.0f}/s) into {args.out}"
    )
    return 0


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("username", help="an existing user to open the sessions for")
    parser.add_argument("out", type=Path, help="file to write, one refresh token per line")
    size = parser.add_mutually_exclusive_group(required=True)
    size.add_argument("--count", type=int, help="mint exactly this many tokens")
    size.add_argument(
        "--cover-seconds",
        type=float,
        help="mint enough for a refresh run this long, from the measured minting rate",
    )
    parser.add_argument(
        "--headroom", type=float, default=2.0, help="safety factor for --cover-seconds"
    )
    parser.add_argument(
        "--min-count", type=int, default=2000, help="lower bound for --cover-seconds"
    )
    return parser.parse_args()


if __name__ == "__main__":
    sys.exit(asyncio.run(main(parse_args())))
