"""Recording "last used" without a write per request.

Sessions used by cookie and API keys note their last use (and a cookie session slides its
idle expiry) at most once per interval per record and process, in a background task, so
the request that triggers it never waits for the write. The UPDATEs are conditional on the
stored time, so several processes still write at most about once per interval between them.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import Awaitable, Callable, Coroutine, Hashable
from datetime import datetime, timedelta
from typing import Any, Generic, TypeVar

_MAX_TRACKED = 100_000

log = logging.getLogger("gatehouse")
K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class UsageRecorder:
    def __init__(self, interval: timedelta) -> None:
        self.interval = interval
        self._last: dict[Hashable, datetime] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def due(
        self,
        key: Hashable,
        stored: datetime | None,
        now: datetime,
        *,
        interval: timedelta | None = None,
    ) -> bool:
        """Whether a use at `now` should be written (and from now on counts as written);
        `interval` overrides the recorder's own for this record (a device's policy)."""
        last = self._last.get(key) or stored
        if last is not None and now - last < (interval or self.interval):
            return False
        if len(self._last) >= _MAX_TRACKED:
            # Forget the eighth noted longest ago (at worst, one more write each).
            for stale in list(itertools.islice(self._last, _MAX_TRACKED // 8)):
                del self._last[stale]
        self._last.pop(key, None)
        self._last[key] = now
        return True

    def write(self, work: Coroutine[Any, Any, None]) -> None:
        """Run `work` in the background; a failure is dropped (the next due use retries)."""
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled():
            task.exception()

    async def close(self) -> None:
        """Wait for the writes in flight (a few at most)."""
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)


class UsageBatch(Generic[K, V]):
    """Uses noted now, written together: one transaction for every record noted within
    `period` seconds, however many requests noted them.

    For records used by many distinct callers at once (a fleet of machines checking in):
    a write per use would queue behind the database's one writer faster than it drains.
    A failed batch is dropped; the next due use of each record notes it again.
    """

    def __init__(
        self, write: Callable[[dict[K, V]], Awaitable[None]], *, period: float = 1.0
    ) -> None:
        self._write = write
        self._period = period
        self._pending: dict[K, V] = {}
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()

    def note(self, key: K, value: V) -> None:
        self._pending[key] = value
        if self._task is None:
            self._task = asyncio.create_task(self._flush_later())

    async def _flush_later(self) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), self._period)
        self._task = None
        batch, self._pending = self._pending, {}
        if batch:
            try:
                await self._write(batch)
            except Exception:  # dropped: the next due use notes it again
                log.warning("writing %d last-use times failed", len(batch), exc_info=True)

    async def close(self) -> None:
        """Write what is noted now, without waiting out the period."""
        while (task := self._task) is not None:
            self._wake.set()
            await task
        self._wake.clear()
