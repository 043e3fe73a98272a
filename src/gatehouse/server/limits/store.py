"""What the limits count in: the `LimitStore` protocol and the in-process `MemoryLimitStore`.

A store offers a few operations, each atomic on its own (no caller ever reads a count and
writes it back), so parallel bursts are counted exactly:

- `count(key, window)`: add one to a fixed window that opens at its first hit and lasts
  `window` seconds; return the count and the time left.
- `peek(key)`: the same answer without adding.
- the lockout of one name, three keys per name: `fail` (failures in the current window),
  `until` (present while the name is locked) and `level` (how many locks in a row, so each
  lock doubles the last). `lock_failure` counts one failure and locks at the threshold;
  `lock_success` clears the failures and the level unless the name is locked.

`MemoryLimitStore` keeps the keys in a dict, one process only, timed by the injected clock.
It never awaits between reading and writing a key, which is what makes it atomic under
asyncio. `storage/redis_limits.py` does the same in Redis with Lua scripts, timed by
Redis's own clock, for several workers and hosts.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Protocol

from gatehouse.server.clock import Clock

# Keys the in-process store holds at most (about 150 bytes each: some 15 MB when full).
MEMORY_STORE_CAPACITY = 100_000


@dataclass(frozen=True, slots=True)
class Hit:
    """A window's count and the seconds until it closes (0 when there is no window)."""

    count: int
    reset_after: float


@dataclass(frozen=True, slots=True)
class LockPolicy:
    """Lockout parameters, in seconds.

    A name is locked for `base` after `threshold` failures within `window`; each lock that
    follows doubles the last, up to `max`. The doubling level is forgotten on a success, or
    `max + window` after a lock ended without another lock.
    """

    threshold: int
    window: float
    base: float
    max: float

    @property
    def level_memory(self) -> float:
        """How long after a lock ends its level is still remembered."""
        return self.max + self.window

    def duration(self, level: int) -> float:
        """The length of the `level`-th lock in a row (1 is the first)."""
        if level > 62:  # 2**62 seconds is past any max; avoid huge floats
            return self.max
        return min(self.base * float(2 ** (level - 1)), self.max)


class LockState(Enum):
    COUNTED = "counted"  # a failure below the threshold
    LOCKED = "locked"  # this failure reached the threshold and locked the name
    ALREADY_LOCKED = "already_locked"  # the name was locked when the failure arrived


@dataclass(frozen=True, slots=True)
class LockResult:
    state: LockState
    retry_after: float  # LOCKED / ALREADY_LOCKED: seconds until the lock ends


class LimitStore(Protocol):
    """Atomic counters and lock state. Every method raises `LimitsUnavailableError` when
    the store cannot be reached."""

    async def count(self, key: str, *, window: float) -> Hit:
        """Add one to the window of `key` (opened now, for `window` seconds, if none)."""
        ...

    async def peek(self, key: str) -> Hit:
        """The window of `key` as it stands; `Hit(0, 0)` when none is open."""
        ...

    async def lock_remaining(self, name: str) -> float:
        """Seconds until the lock of `name` ends; 0 when it is not locked."""
        ...

    async def lock_failure(self, name: str, policy: LockPolicy) -> LockResult:
        """Count one failure of `name` and lock it when that reaches the threshold."""
        ...

    async def lock_success(self, name: str) -> float:
        """Clear the failures and the lock level of `name`, unless it is locked: then
        change nothing and return the seconds left (0 otherwise)."""
        ...

    async def lock_clear(self, name: str) -> None:
        """Forget everything about `name`: its failures, its lock and its level."""
        ...

    async def close(self) -> None: ...


class _Entry:
    __slots__ = ("expires_at", "value")

    def __init__(self, value: int, expires_at: float) -> None:
        self.value = value
        self.expires_at = expires_at


class MemoryLimitStore:
    """The in-process store: a dict of counters that expire, bounded by `capacity`.

    Expired keys are dropped when touched and, when the dict is full, all at once; if it is
    still full then, the oldest tenth of the keys is evicted. Eviction can forget a lock
    early, so `capacity` is set far above what one process sees from legitimate traffic;
    deployments that expect floods of distinct names use Redis (with its own memory policy).
    """

    def __init__(self, clock: Clock, *, capacity: int = MEMORY_STORE_CAPACITY) -> None:
        if capacity < 10:
            raise ValueError("capacity must be at least 10")
        self._clock = clock
        self._capacity = capacity
        self._entries: dict[str, _Entry] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def _now(self) -> float:
        return self._clock.now().timestamp()

    def _get(self, key: str, now: float) -> _Entry | None:
        entry = self._entries.get(key)
        if entry is not None and entry.expires_at <= now:
            del self._entries[key]
            return None
        return entry

    def _put(self, key: str, value: int, expires_at: float, now: float) -> None:
        if key not in self._entries and len(self._entries) >= self._capacity:
            self._make_room(now)
        self._entries[key] = _Entry(value, expires_at)

    def _make_room(self, now: float) -> None:
        for key in [k for k, e in self._entries.items() if e.expires_at <= now]:
            del self._entries[key]
        excess = len(self._entries) - (self._capacity - self._capacity // 10)
        if excess > 0:
            # dicts keep insertion order: the first keys are the oldest windows.
            for key in list(self._entries)[:excess]:
                del self._entries[key]

    # Every method below runs from start to end without an await: atomic under asyncio.

    async def count(self, key: str, *, window: float) -> Hit:
        now = self._now()
        entry = self._get(key, now)
        if entry is None:
            self._put(key, 1, now + window, now)
            return Hit(1, window)
        entry.value += 1
        return Hit(entry.value, entry.expires_at - now)

    async def peek(self, key: str) -> Hit:
        now = self._now()
        entry = self._get(key, now)
        if entry is None:
            return Hit(0, 0.0)
        return Hit(entry.value, entry.expires_at - now)

    async def lock_remaining(self, name: str) -> float:
        now = self._now()
        until = self._get(_until(name), now)
        return until.expires_at - now if until is not None else 0.0

    async def lock_failure(self, name: str, policy: LockPolicy) -> LockResult:
        now = self._now()
        until = self._get(_until(name), now)
        if until is not None:
            return LockResult(LockState.ALREADY_LOCKED, until.expires_at - now)
        failures = self._get(_fail(name), now)
        if failures is None:
            count = 1
            self._put(_fail(name), count, now + policy.window, now)
        else:
            failures.value += 1
            count = failures.value
        if count < policy.threshold:
            return LockResult(LockState.COUNTED, 0.0)
        self._entries.pop(_fail(name), None)
        level_entry = self._get(_level(name), now)
        level = (level_entry.value if level_entry is not None else 0) + 1
        duration = policy.duration(level)
        self._put(_until(name), 1, now + duration, now)
        self._put(_level(name), level, now + duration + policy.level_memory, now)
        return LockResult(LockState.LOCKED, duration)

    async def lock_success(self, name: str) -> float:
        now = self._now()
        until = self._get(_until(name), now)
        if until is not None:
            return until.expires_at - now
        self._entries.pop(_fail(name), None)
        self._entries.pop(_level(name), None)
        return 0.0

    async def lock_clear(self, name: str) -> None:
        for key in (_fail(name), _until(name), _level(name)):
            self._entries.pop(key, None)

    async def close(self) -> None:
        self._entries.clear()


def _fail(name: str) -> str:
    return f"lock:{name}:fail"


def _until(name: str) -> str:
    return f"lock:{name}:until"


def _level(name: str) -> str:
    return f"lock:{name}:level"
