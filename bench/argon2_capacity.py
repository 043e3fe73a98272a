"""How many password verifications per second these cores allow: the ceiling for logins.

Uses the server's own `PasswordHasher` with the production `owasp` profile and the server's
default concurrency (one hash thread per core), and keeps twice `os.cpu_count()`
verifications in flight for a few seconds, through the same async `verify` (the hasher's own
thread pool) that `/auth/login` awaits. Prints a human line and a machine-parseable one:

    ARGON2_RESULT threads=2 seconds=5.01 verifications=240 hashes_per_s=47.9 ms_per_hash=41.8

    python bench/argon2_capacity.py [--seconds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time

from gatehouse.server.accounts.passwords import PasswordHasher

PASSWORD = "argon2-capacity-probe"


async def measure(seconds: float) -> None:
    threads = os.cpu_count() or 1
    hasher = PasswordHasher("owasp", concurrency=threads)
    stored = await hasher.hash(PASSWORD)
    await asyncio.gather(*(hasher.verify(PASSWORD, stored) for _ in range(threads)))  # warm up

    done = 0
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal done
        while time.perf_counter() < deadline:
            matches, _ = await hasher.verify(PASSWORD, stored)
            assert matches
            done += 1

    # Twice as many in flight as threads, so a thread never waits for this loop to hand it
    # the next hash: this measures what the cores allow, not what one loop turn costs.
    started = time.perf_counter()
    try:
        await asyncio.gather(*(worker() for _ in range(2 * threads)))
    finally:
        hasher.close()
    elapsed = time.perf_counter() - started
    rate = done / elapsed
    print(f"argon2id owasp verify: {rate:.1f} hashes/s with {threads} threads")
    print(
        f"ARGON2_RESULT threads={threads} seconds={elapsed:.2f} verifications={done} "
        f"hashes_per_s={rate:.1f} ms_per_hash={1000 * threads / rate:.1f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="how long to measure")
    asyncio.run(measure(parser.parse_args().seconds))


if __name__ == "__main__":
    main()
