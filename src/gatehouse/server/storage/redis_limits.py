"""`RedisLimitStore`: the limits' `LimitStore` in Redis, shared by every worker and host.

Each operation is one Lua script (EVALSHA through redis-py's `register_script`, which
loads the script again after a Redis restart), so a count and its expiry, or a failure and
the lock it causes, happen as one step: parallel bursts from any number of processes are
counted exactly. Windows and locks are Redis key expiries (`PEXPIRE`, `SET PX`), timed by
Redis's clock alone, so hosts whose clocks disagree still agree on every limit.

Failing closed, and fast: a short socket and connect timeout and no retries, so a Redis
that is down or unreachable costs a credential request at most about `TIMEOUT_SECONDS`
before it answers 503 `limits_unavailable`. Any Redis error (refused connection, timeout,
a script refused for lack of memory) becomes `LimitsUnavailableError`. The URL, which may
hold a password, is never logged; warnings name only the kind of error.

Keys: `<prefix>ip:<bucket>`, `<prefix>register:...`, `<prefix>recovery:...`,
`<prefix>mail:<digest>`, and per name `<prefix>lock:{<digest>}:fail|until|level` (a hash
tag, so the three keys of one name sit in one Redis Cluster slot).
"""

from __future__ import annotations

import logging
import time
from typing import Any

import redis.asyncio as redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from gatehouse.server.errors import LimitsUnavailableError
from gatehouse.server.limits.store import Hit, LockPolicy, LockResult, LockState

log = logging.getLogger("gatehouse")

# Per connect and per command. Redis answers in well under a millisecond on a LAN.
TIMEOUT_SECONDS = 0.5
# Connections per process; each operation holds one for well under a millisecond.
MAX_CONNECTIONS = 64
# A Redis outage logs one warning per this many seconds, not one per request.
_WARN_EVERY_SECONDS = 10.0

# KEYS[1] counter; ARGV[1] window ms. -> {count, ms left}
_COUNT = """
local n = redis.call('INCR', KEYS[1])
local left = redis.call('PTTL', KEYS[1])
if left < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  left = tonumber(ARGV[1])
end
return {n, left}
"""

# KEYS[1] counter. -> {count, ms left}
_PEEK = """
local n = redis.call('GET', KEYS[1])
if not n then return {0, 0} end
local left = redis.call('PTTL', KEYS[1])
if left < 0 then left = 0 end
return {tonumber(n), left}
"""

# KEYS fail, until, level; ARGV window ms, threshold, base ms, max ms, level memory ms.
# -> {0, 0} counted, {1, lock ms} locked now, {2, ms left} locked already.
_FAIL = """
local left = redis.call('PTTL', KEYS[2])
if left > 0 then return {2, left} end
local n = redis.call('INCR', KEYS[1])
if redis.call('PTTL', KEYS[1]) < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
if n < tonumber(ARGV[2]) then return {0, 0} end
redis.call('DEL', KEYS[1])
local level = redis.call('INCR', KEYS[3])
local duration = tonumber(ARGV[4])
if level <= 62 then
  duration = math.min(tonumber(ARGV[3]) * 2 ^ (level - 1), duration)
end
duration = math.max(1, math.floor(duration))
redis.call('SET', KEYS[2], '1', 'PX', duration)
redis.call('PEXPIRE', KEYS[3], duration + tonumber(ARGV[5]))
return {1, duration}
"""

# KEYS fail, until, level. -> ms left of the lock (nothing cleared), or 0 after clearing.
_SUCCEED = """
local left = redis.call('PTTL', KEYS[2])
if left > 0 then return left end
redis.call('DEL', KEYS[1], KEYS[3])
return 0
"""

_STATES = {0: LockState.COUNTED, 1: LockState.LOCKED, 2: LockState.ALREADY_LOCKED}


def _ms(seconds: float) -> int:
    return max(1, round(seconds * 1000))


class RedisLimitStore:
    """`LimitStore` over one Redis (redis:// or rediss:// or unix:// URL)."""

    def __init__(self, url: str, *, prefix: str = "gatehouse:") -> None:
        # A blocking pool: a burst past MAX_CONNECTIONS waits (at most TIMEOUT_SECONDS) for
        # a connection instead of failing at once or opening connections without bound.
        pool = redis.BlockingConnectionPool.from_url(
            url,
            max_connections=MAX_CONNECTIONS,
            timeout=TIMEOUT_SECONDS,
            socket_timeout=TIMEOUT_SECONDS,
            socket_connect_timeout=TIMEOUT_SECONDS,
            retry=Retry(NoBackoff(), 0),
            retry_on_timeout=False,
        )
        self._redis = redis.Redis.from_pool(pool)  # owns the pool: aclose() closes it
        self._prefix = prefix
        self._count = self._redis.register_script(_COUNT)
        self._peek = self._redis.register_script(_PEEK)
        self._fail = self._redis.register_script(_FAIL)
        self._succeed = self._redis.register_script(_SUCCEED)
        self._warned_at = float("-inf")

    def __repr__(self) -> str:
        # The URL may carry a password: never part of a repr, a log line or a traceback.
        return f"RedisLimitStore(prefix={self._prefix!r})"

    async def count(self, key: str, *, window: float) -> Hit:
        n, left = await self._run(self._count, [self._prefix + key], [_ms(window)])
        return Hit(int(n), int(left) / 1000)

    async def peek(self, key: str) -> Hit:
        n, left = await self._run(self._peek, [self._prefix + key], [])
        return Hit(int(n), int(left) / 1000)

    async def lock_remaining(self, name: str) -> float:
        try:
            left = await self._redis.pttl(self._lock_keys(name)[1])
        except (RedisError, OSError) as exc:
            raise self._unavailable(exc) from None
        return max(0, int(left)) / 1000

    async def lock_failure(self, name: str, policy: LockPolicy) -> LockResult:
        state, ms = await self._run(
            self._fail,
            self._lock_keys(name),
            [
                _ms(policy.window),
                policy.threshold,
                _ms(policy.base),
                _ms(policy.max),
                _ms(policy.level_memory),
            ],
        )
        return LockResult(_STATES[int(state)], int(ms) / 1000)

    async def lock_success(self, name: str) -> float:
        left = await self._run(self._succeed, self._lock_keys(name), [])
        return int(left) / 1000

    async def lock_clear(self, name: str) -> None:
        try:
            await self._redis.delete(*self._lock_keys(name))
        except (RedisError, OSError) as exc:
            raise self._unavailable(exc) from None

    async def close(self) -> None:
        await self._redis.aclose()

    def _lock_keys(self, name: str) -> list[str]:
        base = f"{self._prefix}lock:{{{name}}}:"
        return [base + "fail", base + "until", base + "level"]

    async def _run(self, script: Any, keys: list[str], args: list[int]) -> Any:
        try:
            return await script(keys=keys, args=args)
        except (RedisError, OSError) as exc:
            raise self._unavailable(exc) from None

    def _unavailable(self, exc: BaseException) -> LimitsUnavailableError:
        now = time.monotonic()
        if now - self._warned_at >= _WARN_EVERY_SECONDS:
            self._warned_at = now
            # The exception's text may name the host; its class says enough.
            log.warning("the limit store (Redis) is unavailable: %s", type(exc).__name__)
        return LimitsUnavailableError()
