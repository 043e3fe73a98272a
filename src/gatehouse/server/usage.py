"""Recording "last used" without a write per request.

Sessions used by cookie and API keys note their last use (and a cookie session slides its
idle expiry) at most once per interval per record and process, in a background task, so
the request that triggers it never waits for the write. The UPDATEs are conditional on the
stored time, so several processes still write at most about once per interval between them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Hashable
from datetime import datetime, timedelta
from typing import Any

_MAX_TRACKED = 100_000


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
            self._last.clear()
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
