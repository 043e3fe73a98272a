"""The principal cache on its own: eviction, races, expiry, staleness."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

from gatehouse.server.accounts.models import User
from gatehouse.server.sessions.cache import Loaded, PrincipalCache

NOW = datetime(2030, 1, 1, tzinfo=UTC)


def _user() -> User:
    return User(
        id=uuid4(),
        username="u",
        username_canonical="u",
        email=None,
        roles=frozenset({"user"}),
        is_active=True,
        created_at=NOW,
        updated_at=NOW,
    )


def _fresh_cache() -> PrincipalCache:
    cache = PrincipalCache(ttl_seconds=30, fresh_seconds=60)
    cache.confirm_fresh()
    return cache


def test_a_cached_principal_is_returned_until_its_user_is_evicted() -> None:
    """put then get hits; evict_users removes every session of that user."""
    cache, user, sid = _fresh_cache(), _user(), uuid4()
    cache.put(sid, Loaded(user, NOW + timedelta(days=1)), cache.generation)
    assert cache.get(sid, user.id, NOW) is user
    cache.evict_users([user.id])
    assert cache.get(sid, user.id, NOW) is None


def test_a_miss_that_raced_an_eviction_is_not_cached() -> None:
    """A database read started before an eviction cannot fill the cache after it."""
    cache, user, sid = _fresh_cache(), _user(), uuid4()
    generation = cache.generation
    cache.evict_users([user.id])
    cache.put(sid, Loaded(user, NOW + timedelta(days=1)), generation)
    assert cache.get(sid, user.id, NOW) is None


def test_an_expired_session_is_not_answered_from_the_cache() -> None:
    """Past the session's absolute expiry the cache answers nothing."""
    cache, user, sid = _fresh_cache(), _user(), uuid4()
    cache.put(sid, Loaded(user, NOW + timedelta(minutes=1)), cache.generation)
    assert cache.get(sid, user.id, NOW + timedelta(minutes=2)) is None


def test_a_token_for_another_user_does_not_match_the_session() -> None:
    """The session id must belong to the token's subject."""
    cache, user, sid = _fresh_cache(), _user(), uuid4()
    cache.put(sid, Loaded(user, NOW + timedelta(days=1)), cache.generation)
    assert cache.get(sid, UUID(int=7), NOW) is None


def test_nothing_is_cached_before_the_log_was_read() -> None:
    """A cache never confirmed fresh neither stores nor answers."""
    cache, user, sid = PrincipalCache(ttl_seconds=30, fresh_seconds=60), _user(), uuid4()
    cache.put(sid, Loaded(user, NOW + timedelta(days=1)), cache.generation)
    assert len(cache) == 0


def test_the_cache_stands_aside_when_the_log_was_not_read_lately() -> None:
    """Once the last successful poll is older than `fresh_seconds`, nothing is answered."""
    cache, user, sid = PrincipalCache(ttl_seconds=30, fresh_seconds=0.05), _user(), uuid4()
    cache.confirm_fresh()
    cache.put(sid, Loaded(user, NOW + timedelta(days=1)), cache.generation)
    assert cache.get(sid, user.id, NOW) is user
    time.sleep(0.06)
    assert cache.get(sid, user.id, NOW) is None


def test_a_full_cache_forgets_its_oldest_entries_not_all_of_them() -> None:
    """At the size limit the oldest eighth goes; the newest entries (a user's session
    cached after a fleet of devices) stay answerable."""
    cache = PrincipalCache(ttl_seconds=30, fresh_seconds=60, max_entries=16)
    cache.confirm_fresh()
    device_ids = [uuid4() for _ in range(15)]
    for device_id in device_ids:
        cache.put(
            ("device", device_id),
            Loaded(None, NOW + timedelta(days=1), None, (device_id,)),
            cache.generation,
        )
    user, sid = _user(), uuid4()
    cache.put(sid, Loaded(user, NOW + timedelta(days=1)), cache.generation)
    cache.put(("device", "one more"), Loaded(None, NOW + timedelta(days=1)), cache.generation)
    assert len(cache) == 15
    assert cache.lookup(("device", device_ids[0]), NOW) is None
    assert cache.lookup(("device", device_ids[1]), NOW) is None
    assert cache.lookup(("device", device_ids[2]), NOW) is not None
    assert cache.get(sid, user.id, NOW) is user


def test_an_entry_is_evicted_by_each_of_its_owners() -> None:
    """A device's entry goes when its device id or its license id is invalidated."""
    cache = _fresh_cache()
    device_id, license_id = uuid4(), uuid4()
    for key in ("by-fingerprint", "by-id"):
        owners = (device_id, license_id)
        cache.put(key, Loaded(None, NOW + timedelta(days=1), None, owners), cache.generation)
    cache.evict_users([license_id])
    assert cache.lookup("by-fingerprint", NOW) is None
    assert cache.lookup("by-id", NOW) is None
