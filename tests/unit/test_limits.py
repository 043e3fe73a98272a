"""The limit stores (in-process and a real Redis, the same tests for both), address buckets,
and the guard's own rules over them."""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta

import pytest
import redis.asyncio as redis

from gatehouse.server.accounts.names import canonical_username
from gatehouse.server.clock import ManualClock
from gatehouse.server.errors import AccountLockedError, LimitsUnavailableError, RateLimitedError
from gatehouse.server.limits import AbuseGuard, LimitPolicy, LockPolicy, address_key
from gatehouse.server.limits.guard import MAIL_LIMIT
from gatehouse.server.limits.store import LimitStore, LockState, MemoryLimitStore
from gatehouse.server.storage.redis_limits import RedisLimitStore

REDIS_URL = os.environ.get("GATEHOUSE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@dataclass
class StoreCase:
    store: LimitStore
    # Let `seconds` pass: the manual clock moves, or (Redis keeps its own time) we sleep.
    advance: Callable[[float], Awaitable[None]]
    kind: str


async def _drop_prefix(prefix: str) -> None:
    client = redis.Redis.from_url(REDIS_URL)
    try:
        keys = [key async for key in client.scan_iter(match=f"{prefix}*")]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


@pytest.fixture(params=["memory", "redis"])
async def case(request: pytest.FixtureRequest) -> AsyncIterator[StoreCase]:
    """Each store: the in-process one on a manual clock, and Redis under a random prefix."""
    if request.param == "memory":
        clock = ManualClock()

        async def move(seconds: float) -> None:
            clock.advance(timedelta(seconds=seconds))

        memory = MemoryLimitStore(clock)
        yield StoreCase(memory, move, "memory")
        await memory.close()
        return
    prefix = f"gatehouse-test:{secrets.token_hex(8)}:"
    store = RedisLimitStore(REDIS_URL, prefix=prefix)

    async def wait(seconds: float) -> None:
        await asyncio.sleep(seconds)

    try:
        yield StoreCase(store, wait, "redis")
    finally:
        await store.close()
        await _drop_prefix(prefix)


# Short enough that the Redis case sleeps through a window in a fraction of a second.
WINDOW = 0.3
POLICY = LockPolicy(threshold=3, window=5.0, base=0.2, max=0.8)


async def test_count_opens_a_window_and_adds_one_per_hit(case: StoreCase) -> None:
    """The first hit opens a window of the given length; each hit adds one; peek adds none."""
    first = await case.store.count("k", window=60)
    second = await case.store.count("k", window=60)
    peeked = await case.store.peek("k")
    assert (first.count, second.count, peeked.count) == (1, 2, 2)
    assert 0 < peeked.reset_after <= 60


async def test_peek_of_an_unknown_key_is_zero(case: StoreCase) -> None:
    """A key never counted has count 0 and no window."""
    hit = await case.store.peek("never")
    assert (hit.count, hit.reset_after) == (0, 0)


async def test_a_window_closes_after_its_length(case: StoreCase) -> None:
    """Hits are forgotten once the window (opened by the first) has passed."""
    await case.store.count("k", window=WINDOW)
    await case.store.count("k", window=WINDOW)
    await case.advance(WINDOW + 0.1)
    assert (await case.store.peek("k")).count == 0
    assert (await case.store.count("k", window=WINDOW)).count == 1


async def test_parallel_counts_are_exact(case: StoreCase) -> None:
    """200 hits at once get the counts 1 to 200, each once: no update is lost."""
    hits = await asyncio.gather(*(case.store.count("burst", window=60) for _ in range(200)))
    assert sorted(h.count for h in hits) == list(range(1, 201))


async def test_keys_are_separate(case: StoreCase) -> None:
    """Hits on one key do not count on another."""
    await case.store.count("a", window=60)
    assert (await case.store.peek("b")).count == 0


async def test_threshold_failures_lock_the_name(case: StoreCase) -> None:
    """Failures below the threshold are counted; the one reaching it locks for `base`."""
    results = [await case.store.lock_failure("n", POLICY) for _ in range(POLICY.threshold)]
    assert [r.state for r in results] == [LockState.COUNTED] * 2 + [LockState.LOCKED]
    assert results[-1].retry_after == pytest.approx(POLICY.base)
    assert 0 < await case.store.lock_remaining("n") <= POLICY.base + 1e-3


async def test_a_failure_on_a_locked_name_is_refused_and_not_counted(case: StoreCase) -> None:
    """While locked, a failure reports the lock and does not lengthen it."""
    for _ in range(POLICY.threshold):
        await case.store.lock_failure("n", POLICY)
    result = await case.store.lock_failure("n", POLICY)
    assert result.state is LockState.ALREADY_LOCKED
    assert 0 < result.retry_after <= POLICY.base + 1e-3


async def test_each_further_lock_doubles_up_to_the_max(case: StoreCase) -> None:
    """Locks in a row last base, 2*base, 4*base, then max (0.2, 0.4, 0.8, 0.8 s)."""
    durations = []
    for _ in range(4):
        for _ in range(POLICY.threshold - 1):
            await case.store.lock_failure("n", POLICY)
        locked = await case.store.lock_failure("n", POLICY)
        assert locked.state is LockState.LOCKED
        durations.append(locked.retry_after)
        await case.advance(locked.retry_after + 0.05)
    assert durations == pytest.approx([0.2, 0.4, 0.8, 0.8])


async def test_a_lock_ends_after_its_duration(case: StoreCase) -> None:
    """Once the lock has passed, the name is not locked and failures count afresh."""
    for _ in range(POLICY.threshold):
        await case.store.lock_failure("n", POLICY)
    await case.advance(POLICY.base + 0.05)
    assert await case.store.lock_remaining("n") == 0
    assert (await case.store.lock_failure("n", POLICY)).state is LockState.COUNTED


async def test_success_clears_failures_and_the_lock_level(case: StoreCase) -> None:
    """After a success, threshold-1 failures lock nothing and the next lock is `base` again."""
    for _ in range(POLICY.threshold):
        await case.store.lock_failure("n", POLICY)
    await case.advance(POLICY.base + 0.05)
    await case.store.lock_failure("n", POLICY)
    assert await case.store.lock_success("n") == 0
    for _ in range(POLICY.threshold - 1):
        assert (await case.store.lock_failure("n", POLICY)).state is LockState.COUNTED
    locked = await case.store.lock_failure("n", POLICY)
    assert locked.state is LockState.LOCKED
    assert locked.retry_after == pytest.approx(POLICY.base)


async def test_success_on_a_locked_name_changes_nothing(case: StoreCase) -> None:
    """A success while locked reports the lock's time left and leaves it in place."""
    for _ in range(POLICY.threshold):
        await case.store.lock_failure("n", POLICY)
    assert await case.store.lock_success("n") > 0
    assert await case.store.lock_remaining("n") > 0


async def test_failures_older_than_the_window_are_forgotten(case: StoreCase) -> None:
    """Failures spread wider than the lockout window never lock."""
    policy = LockPolicy(threshold=2, window=WINDOW, base=10, max=10)
    await case.store.lock_failure("n", policy)
    await case.advance(WINDOW + 0.1)
    assert (await case.store.lock_failure("n", policy)).state is LockState.COUNTED


async def test_the_lock_level_decays_after_max_plus_window(case: StoreCase) -> None:
    """A lock that comes more than max + window after the last one ended is `base` again."""
    policy = LockPolicy(threshold=1, window=0.1, base=0.1, max=0.2)
    assert (await case.store.lock_failure("n", policy)).retry_after == pytest.approx(0.1)
    await case.advance(0.1 + policy.level_memory + 0.1)
    assert (await case.store.lock_failure("n", policy)).retry_after == pytest.approx(0.1)


async def test_parallel_failures_lock_exactly_once(case: StoreCase) -> None:
    """25 failures at once with threshold 10: 9 counted, 1 locks, 15 find the name locked."""
    policy = LockPolicy(threshold=10, window=60, base=60, max=60)
    results = await asyncio.gather(*(case.store.lock_failure("n", policy) for _ in range(25)))
    states = [r.state for r in results]
    assert states.count(LockState.COUNTED) == 9
    assert states.count(LockState.LOCKED) == 1
    assert states.count(LockState.ALREADY_LOCKED) == 15


async def test_names_are_separate(case: StoreCase) -> None:
    """One name's lock does not lock another."""
    for _ in range(POLICY.threshold):
        await case.store.lock_failure("a", POLICY)
    assert await case.store.lock_remaining("b") == 0


# --- the in-process store's bounds ---


async def test_memory_store_drops_expired_keys_when_full() -> None:
    """At capacity, expired windows are dropped before any live one."""
    clock = ManualClock()
    store = MemoryLimitStore(clock, capacity=100)
    for i in range(100):
        await store.count(f"old{i}", window=1)
    clock.advance(timedelta(seconds=2))
    await store.count("live", window=60)
    assert len(store) == 1


async def test_memory_store_evicts_the_oldest_when_full_of_live_keys() -> None:
    """At capacity with nothing expired, the oldest tenth goes; memory stays bounded."""
    store = MemoryLimitStore(ManualClock(), capacity=100)
    for i in range(1000):
        await store.count(f"k{i}", window=60)
    assert len(store) <= 100
    assert (await store.peek("k999")).count == 1
    assert (await store.peek("k0")).count == 0


# --- Redis failing closed ---


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def test_unreachable_redis_fails_closed_on_every_operation(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Each operation raises LimitsUnavailableError; the URL's password is never logged."""
    url = f"redis://:hunter2-secret@127.0.0.1:{_closed_port()}/0"
    store = RedisLimitStore(url)
    operations: list[Callable[[], Awaitable[object]]] = [
        lambda: store.count("k", window=1),
        lambda: store.peek("k"),
        lambda: store.lock_remaining("n"),
        lambda: store.lock_failure("n", POLICY),
        lambda: store.lock_success("n"),
        lambda: store.lock_clear("n"),
    ]
    with caplog.at_level(logging.WARNING, logger="gatehouse"):
        for operation in operations:
            with pytest.raises(LimitsUnavailableError) as raised:
                await operation()
            assert "hunter2" not in str(raised.value)
    await store.close()
    assert "unavailable" in caplog.text
    assert "hunter2" not in caplog.text
    assert "hunter2" not in repr(store)


async def test_redis_prefixes_keep_deployments_apart() -> None:
    """Two stores on one Redis under different prefixes do not share counts."""
    one = f"gatehouse-test:{secrets.token_hex(8)}:"
    two = f"gatehouse-test:{secrets.token_hex(8)}:"
    first, second = RedisLimitStore(REDIS_URL, prefix=one), RedisLimitStore(REDIS_URL, prefix=two)
    again = RedisLimitStore(REDIS_URL, prefix=one)
    try:
        await first.count("k", window=60)
        assert (await second.peek("k")).count == 0
        assert (await again.peek("k")).count == 1
    finally:
        for store in (first, second, again):
            await store.close()
        await _drop_prefix(one)
        await _drop_prefix(two)


# --- address buckets ---


@pytest.mark.parametrize(
    ("address", "bucket"),
    [
        ("203.0.113.7", "203.0.113.7"),
        ("::ffff:203.0.113.7", "203.0.113.7"),
        ("2001:db8:1:2:aaaa:bbbb:cccc:dddd", "2001:db8:1:2::/64"),
        ("2001:db8:1:2::1", "2001:db8:1:2::/64"),
        ("2001:db8:1:3::1", "2001:db8:1:3::/64"),
        (None, "unknown"),
        ("", "unknown"),
        ("not-an-address", "unknown"),
    ],
)
def test_address_buckets(address: str | None, bucket: str) -> None:
    """IPv4 exact, IPv6 by /64, IPv4-mapped folded to IPv4, anything else one bucket."""
    assert address_key(address) == bucket


# --- the guard over the in-process store ---


def _guard(clock: ManualClock, **changes: int) -> AbuseGuard:
    values = {
        "ip_failure_limit": 5,
        "ip_failure_window": 600.0,
        "register_limit": 2,
        "register_window": 3600.0,
        "recovery_limit": 2,
        "recovery_window": 3600.0,
        "lock": LockPolicy(threshold=3, window=900, base=60, max=900),
    }
    values.update(changes)
    return AbuseGuard(store=MemoryLimitStore(clock), policy=LimitPolicy(**values), clock=clock)  # type: ignore[arg-type]


async def test_variants_of_a_name_share_one_lock(clock: ManualClock) -> None:
    """Case, full-width and compatibility variants canonicalise to one name, one count."""
    guard = _guard(clock)
    for variant in ("Alice", "ALICE", "\uff21\uff4c\uff49\uff43\uff45"):
        await guard.account_failed(canonical_username(variant)[1])
    with pytest.raises(AccountLockedError):
        await guard.check_account(canonical_username("alice")[1])


async def test_an_address_is_refused_at_its_limit(clock: ManualClock) -> None:
    """After `ip_failure_limit` failures the address is refused until the window ends."""
    guard = _guard(clock)
    for _ in range(5):
        await guard.check_address("198.51.100.1")
        await guard.address_failed("198.51.100.1")
    with pytest.raises(RateLimitedError) as refused:
        await guard.check_address("198.51.100.1")
    assert refused.value.limit == "ip"
    assert refused.value.retry_after == 600
    await guard.check_address("198.51.100.2")
    clock.advance(timedelta(seconds=601))
    await guard.check_address("198.51.100.1")


async def test_a_failure_past_the_limit_is_refused_itself(clock: ManualClock) -> None:
    """A failure counted beyond the limit (it passed the check before others landed) is 429."""
    guard = _guard(clock)
    for _ in range(5):
        await guard.address_failed("198.51.100.1")
    with pytest.raises(RateLimitedError):
        await guard.address_failed("198.51.100.1")


async def test_registration_limit(clock: ManualClock) -> None:
    """The third registration attempt of an address within the hour is refused."""
    guard = _guard(clock)
    await guard.registration("198.51.100.1")
    await guard.registration("198.51.100.1")
    with pytest.raises(RateLimitedError) as refused:
        await guard.registration("198.51.100.1")
    assert refused.value.limit == "register"


async def test_recovery_limit(clock: ManualClock) -> None:
    """The third recovery request of an address within the hour is refused."""
    guard = _guard(clock)
    await guard.recovery("198.51.100.1")
    await guard.recovery("198.51.100.1")
    with pytest.raises(RateLimitedError) as refused:
        await guard.recovery("198.51.100.1")
    assert refused.value.limit == "recovery"


async def test_mail_allowed_three_times_per_quarter_hour(clock: ManualClock) -> None:
    """Three mails to one address are allowed, the fourth not; 15 minutes later again."""
    guard = _guard(clock)
    allowed = [await guard.mail_allowed("digest-a") for _ in range(MAIL_LIMIT + 1)]
    assert allowed == [True] * MAIL_LIMIT + [False]
    assert await guard.mail_allowed("digest-b")
    clock.advance(timedelta(minutes=15, seconds=1))
    assert await guard.mail_allowed("digest-a")


async def test_clearing_a_name_unlocks_it_and_resets_the_level(case: StoreCase) -> None:
    """After lock_clear, the name is not locked and its next lock is `base` again."""
    for _ in range(POLICY.threshold):
        await case.store.lock_failure("n", POLICY)
    await case.store.lock_clear("n")
    assert await case.store.lock_remaining("n") == 0
    for _ in range(POLICY.threshold - 1):
        await case.store.lock_failure("n", POLICY)
    locked = await case.store.lock_failure("n", POLICY)
    assert locked.retry_after == pytest.approx(POLICY.base)
