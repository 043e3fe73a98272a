"""CPU per storage operation, in-process, on a fresh SQLite database.

What one login or refresh spends on the database besides HTTP and argon2, measured through
the server's own composition root. Each operation runs WARM_UP times untimed, then N times
timed; CPU time is the whole process's (all threads), so driver-thread hand-offs count.

    python bench/storage_ops.py [--count 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from collections.abc import Awaitable, Callable

import sqlalchemy as sa

from gatehouse.server.config import Settings
from gatehouse.server.sessions.models import ClientInfo
from gatehouse.server.storage.migrate import upgrade
from gatehouse.server.wiring import build_services

WARM_UP = 100
PASSWORD = "storage-ops-password"


async def measure(count: int) -> None:
    with tempfile.TemporaryDirectory() as data_dir:
        settings = Settings(
            data_dir=data_dir,
            password_hashing="test",  # noqa: S106 - a hashing profile, not a password
            secret_key="storage-ops-bench-secret-0123456789abcdef",  # noqa: S106 - throwaway
        )
        services = build_services(settings)
        try:
            await upgrade(services.db)
            await services.start()
            name = f"bench-{os.getpid()}"
            await services.accounts.register(name, PASSWORD)
            user = await services.accounts.find_by_username(name)
            assert user is not None
            users = services.accounts._users  # the repository itself, for its own cost
            client = ClientInfo(device_name="bench")

            async def empty_read() -> None:
                async with services.db.read():
                    pass

            async def empty_write() -> None:
                async with services.db.write():
                    pass

            async def select_one() -> None:
                async with services.db.read() as conn:
                    await conn.execute(sa.text("SELECT 1"))

            ops: list[tuple[str, Callable[[], Awaitable[object]]]] = [
                ("empty read transaction", empty_read),
                ("empty write transaction", empty_write),
                ("read: SELECT 1", select_one),
                ("credential lookup (login's read)", lambda: users.find_credentials(name)),
                (
                    "sessions.open (login's write + signing)",
                    lambda: services.sessions.open(user, client),
                ),
            ]
            print(f"SQLite, {count} runs each")
            for label, op in ops:
                for _ in range(WARM_UP):
                    await op()
                cpu0, wall0 = time.process_time(), time.perf_counter()
                for _ in range(count):
                    await op()
                    await asyncio.sleep(0)  # as requests yield between transactions
                cpu = (time.process_time() - cpu0) / count * 1e3
                wall = (time.perf_counter() - wall0) / count * 1e3
                print(f"  {label:42s} cpu {cpu:6.3f} ms   wall {wall:6.3f} ms")
        finally:
            await services.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=2000)
    asyncio.run(measure(parser.parse_args().count))


if __name__ == "__main__":
    main()
