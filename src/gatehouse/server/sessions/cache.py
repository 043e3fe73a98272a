"""The principal cache: protected routes check a live session without a database read.

Each process keeps, per session (and per API key, keyed by its public id), the user it
belongs to and its expiry, for at most `ttl` seconds. It forgets a user's entries:

- at once, when this process commits a write that ends a session or changes the user
  (the invalidation log publishes to `evict_users` after commit);
- within milliseconds, when another process or host does, on PostgreSQL (the watcher
  listens for the NOTIFY each invalidation sends as it commits);
- within one poll interval in any case (the watcher also reads the shared invalidation
  log and evicts what it finds): the only channel on SQLite, the safety net on PostgreSQL.

A lookup that misses reads the database and fills the cache only if no eviction happened
meanwhile (the generation check), so a revocation racing a miss cannot be cached over. If
the watcher has not confirmed the log recently (the database is unreachable, the task
died), the cache stops answering and every request reads the database again.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections.abc import Awaitable, Callable, Hashable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import NamedTuple
from uuid import UUID

from gatehouse.server.accounts.models import User
from gatehouse.server.clock import Clock
from gatehouse.server.sessions.repository import InvalidationFeed

log = logging.getLogger("gatehouse.sessions")

_FIRST_LISTEN_RETRY_SECONDS = 1.0
_MAX_LISTEN_RETRY_SECONDS = 30.0


@dataclass(frozen=True, slots=True)
class CacheEntry:
    # The user the entry belongs to (None for a device's entry).
    user: User | None
    expires_at: datetime
    cached_at: float
    # What else the entry's owner needs (an API key's record and digest, a device's
    # record); None for sessions.
    payload: object = None
    # Every id it is evicted by (its user's and any other owner's).
    owners: tuple[UUID, ...] = ()


class Loaded(NamedTuple):
    """What a cache loader returns: the user, when the entry stops being valid, the
    payload, and the other ids whose invalidation must evict it (a device, its license)."""

    user: User | None
    expires_at: datetime
    payload: object = None
    owners: tuple[UUID, ...] = ()


class PrincipalCache:
    """Session id (or API key id) -> (user, expiry, payload), bounded in size and age."""

    def __init__(self, *, ttl_seconds: float, fresh_seconds: float, max_entries: int = 100_000):
        self._ttl = ttl_seconds
        self._fresh_for = fresh_seconds
        self._max = max_entries
        self._entries: dict[Hashable, CacheEntry] = {}
        self._by_user: dict[UUID, set[Hashable]] = {}
        self._generation = 0
        self._fresh_until = 0.0

    @property
    def generation(self) -> int:
        return self._generation

    def get(self, session_id: UUID, user_id: UUID, now: datetime) -> User | None:
        entry = self.lookup(session_id, now)
        if entry is None or entry.user is None or entry.user.id != user_id:
            return None
        return entry.user

    def lookup(self, key: Hashable, now: datetime) -> CacheEntry | None:
        """The fresh, unexpired entry under `key`, or None."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        mono = time.monotonic()
        if mono > self._fresh_until or mono - entry.cached_at > self._ttl:
            return None
        if entry.expires_at <= now:
            return None
        return entry

    def put(self, key: Hashable, loaded: Loaded, generation: int) -> None:
        """Cache a principal read from the database, unless an eviction came in between.
        It is evicted with its user's id and with each of `loaded.owners`."""
        if generation != self._generation or time.monotonic() > self._fresh_until:
            return
        if len(self._entries) >= self._max:
            self._drop_oldest(self._max // 8)
        user, expires_at, payload, owners = loaded
        if user is not None:
            owners = (user.id, *owners)
        self._entries.pop(key, None)  # re-inserted last: the dict's order is the age order
        self._entries[key] = CacheEntry(user, expires_at, time.monotonic(), payload, owners)
        for owner in owners:
            self._by_user.setdefault(owner, set()).add(key)

    def _drop_oldest(self, count: int) -> None:
        """Make room: forget the `count` entries cached longest ago (a fleet of machines
        checking in must not flush every user's cached session at once)."""
        for key in list(itertools.islice(self._entries, count)):
            entry = self._entries.pop(key)
            for owner in entry.owners:
                keys = self._by_user.get(owner)
                if keys is not None:
                    keys.discard(key)
                    if not keys:
                        del self._by_user[owner]

    async def fill(
        self, key: Hashable, load: Callable[[], Awaitable[Loaded | None]]
    ) -> CacheEntry | None:
        """After a `lookup` miss: `load` reads the live record from the database (None when
        there is none), and it is cached unless an eviction came in meanwhile (a revocation
        racing the read must not be cached over). Call as `lookup(...) or await fill(...)`,
        so a hit costs no coroutine."""
        generation = self._generation
        loaded = await load()
        if loaded is None:
            return None
        self.put(key, loaded, generation)
        return CacheEntry(loaded.user, loaded.expires_at, time.monotonic(), loaded.payload)

    def evict_users(self, user_ids: Iterable[UUID]) -> None:
        """Forget every entry of these users (or devices, or licenses: any owner id)."""
        self._generation += 1
        for user_id in user_ids:
            for key in self._by_user.pop(user_id, ()):
                self._entries.pop(key, None)

    def clear(self) -> None:
        self._generation += 1
        self._entries.clear()
        self._by_user.clear()

    def confirm_fresh(self) -> None:
        """The watcher has just read the invalidation log: answers are good for a while."""
        self._fresh_until = time.monotonic() + self._fresh_for

    def __len__(self) -> int:
        return len(self._entries)


class InvalidationWatcher:
    """Polls the shared invalidation log and evicts what other processes invalidated."""

    def __init__(
        self,
        *,
        feed: InvalidationFeed,
        cache: PrincipalCache,
        clock: Clock,
        interval: timedelta,
        window: timedelta = timedelta(seconds=10),
        retention: timedelta = timedelta(hours=1),
    ) -> None:
        self._feed = feed
        self._cache = cache
        self._clock = clock
        self._interval = interval.total_seconds()
        # Rows are re-read for `window`, so a transaction that commits late (or a host whose
        # clock lags by less than that) is still seen; `seen` keeps each row from evicting
        # twice. Each poll reads only the invalidations of the last `window`.
        self._window = window
        self._retention = retention
        self._seen: dict[int, datetime] = {}
        self._last_prune = time.monotonic()
        # Set while notifications are being received (PostgreSQL); for tests and health.
        self.listening = asyncio.Event()

    async def poll_once(self) -> None:
        now = self._clock.now()
        rows = await self._feed.recent(now - self._window)
        fresh = [r for r in rows if r.seq not in self._seen]
        if fresh:
            self._cache.evict_users({r.user_id for r in fresh})
            for row in fresh:
                self._seen[row.seq] = row.created_at
        horizon = now - self._window * 2
        self._seen = {seq: at for seq, at in self._seen.items() if at >= horizon}
        self._cache.confirm_fresh()
        if time.monotonic() - self._last_prune > 60:
            self._last_prune = time.monotonic()
            await self._feed.prune(now - self._retention)

    async def run(self) -> None:
        """Listen and poll forever; a failed poll makes the cache stand aside until the
        next success, a lost listener is reopened (polls cover the gap)."""
        listener = asyncio.create_task(self._listen())
        try:
            while True:
                try:
                    await self.poll_once()
                except Exception:  # a background loop must outlive any one failure
                    log.warning("invalidation poll failed; the principal cache stands aside")
                await asyncio.sleep(self._interval)
        finally:
            listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await listener

    async def _listen(self) -> None:
        backoff = _FIRST_LISTEN_RETRY_SECONDS
        while True:
            try:
                await self._feed.listen(self._cache.evict_users, self.listening.set)
                return  # the store cannot push (SQLite): polls alone
            except Exception:  # a background loop must outlive any one failure
                if self.listening.is_set():
                    backoff = _FIRST_LISTEN_RETRY_SECONDS
                log.warning("invalidation notifications lost; polling only until they resume")
            finally:
                self.listening.clear()
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, _MAX_LISTEN_RETRY_SECONDS)
