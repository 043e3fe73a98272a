"""Abuse defence: per-account lockout and per-address limits (`AbuseGuard`), over a store
that counts atomically (`MemoryLimitStore` in-process, `storage/redis_limits.py` shared)."""

from gatehouse.server.limits.addresses import address_key
from gatehouse.server.limits.guard import AbuseGuard, LimitPolicy
from gatehouse.server.limits.store import LimitStore, LockPolicy, MemoryLimitStore

__all__ = [
    "AbuseGuard",
    "LimitPolicy",
    "LimitStore",
    "LockPolicy",
    "MemoryLimitStore",
    "address_key",
]
