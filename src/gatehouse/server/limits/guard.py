"""`AbuseGuard`: the limits every credential path asks before and after it checks a secret.

Three kinds of limit, all counted in a `LimitStore` (in-process, or Redis shared by every
worker and host):

- Per name (`check_account`, `account_failed`, `account_succeeded`): failures of one
  canonical username, existing or not, lock it for `lockout_base`, doubling per lock up to
  `lockout_max`. A locked name is refused before any password is checked.
- Per address (`check_address`, `address_failed`): failed credential attempts of one
  client address (IPv4 exact, IPv6 by /64; see `addresses.py`); past `ip_failure_limit`
  within `ip_failure_window` every credential path refuses the address.
- Per address, per attempt (`registration`, `recovery`) and per mail address
  (`mail_allowed`): counts of attempts, successful or not.

Exactness under parallel bursts: a failure is counted atomically and the count it returns
decides. A failure that arrives when its name is already locked, or its address already
past its limit (it was checked before the burst's other failures landed), answers 429
itself rather than its verdict: so however many attempts run at once, at most
`lockout_threshold` verdicts per lock (and `ip_failure_limit` per window) are revealed.

Hot paths (API keys, device verification) must not pay a store round trip per request:
`check_address` remembers, per process, that an address was below its limit for at most
`MEMO_SECONDS` (and that it was blocked, until its window ends). Failures are always
counted in the store, so the memo only lets a *successful* request from an address another
process just blocked through, for at most that second.

Every method raises `LimitsUnavailableError` (503) when the store cannot be reached: the
credential paths fail closed.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import NoReturn

from gatehouse.server import metrics
from gatehouse.server.clock import Clock
from gatehouse.server.config import Settings
from gatehouse.server.errors import (
    AccountLockedError,
    AuthenticationError,
    InvalidGrantError,
    NotAuthenticatedError,
    RateLimitedError,
)
from gatehouse.server.limits.addresses import address_key
from gatehouse.server.limits.store import LimitStore, LockPolicy, LockState

# How long one process trusts its last look at an address's count.
MEMO_SECONDS = 1.0
# Addresses remembered per process (a few hundred bytes each).
MEMO_CAPACITY = 10_000
# At most this many mails to one address per window (issue 10 item 9), whatever asks.
MAIL_LIMIT = 3
MAIL_WINDOW_SECONDS = 15 * 60.0


@dataclass(frozen=True, slots=True)
class LimitPolicy:
    """The numbers, in seconds, from Settings."""

    ip_failure_limit: int
    ip_failure_window: float
    register_limit: int
    register_window: float
    recovery_limit: int
    recovery_window: float
    lock: LockPolicy

    @classmethod
    def from_settings(cls, settings: Settings) -> LimitPolicy:
        return cls(
            ip_failure_limit=settings.ip_failure_limit,
            ip_failure_window=settings.ip_failure_window.total_seconds(),
            register_limit=settings.register_ip_limit,
            register_window=settings.register_ip_window.total_seconds(),
            recovery_limit=settings.recovery_ip_limit,
            recovery_window=settings.recovery_ip_window.total_seconds(),
            lock=LockPolicy(
                threshold=settings.lockout_threshold,
                window=settings.lockout_window.total_seconds(),
                base=settings.lockout_base.total_seconds(),
                max=settings.lockout_max.total_seconds(),
            ),
        )


def _name_key(canonical: str) -> str:
    # A digest keeps keys short and bounded, and usernames out of the store's key space.
    return hashlib.blake2b(canonical.encode(), digest_size=16).hexdigest()


class AbuseGuard:
    """Lockouts and rate limits for the credential paths; see the module docstring."""

    def __init__(
        self,
        *,
        store: LimitStore,
        policy: LimitPolicy,
        clock: Clock,
        memo_seconds: float = MEMO_SECONDS,
        memo_capacity: int = MEMO_CAPACITY,
    ) -> None:
        self._store = store
        self._policy = policy
        self._clock = clock
        self._memo_seconds = memo_seconds
        self._memo_capacity = memo_capacity
        # address bucket -> (valid until, blocked?); insertion order is age.
        self._memo: dict[str, tuple[float, bool]] = {}

    @property
    def policy(self) -> LimitPolicy:
        return self._policy

    # --- per address: failed credential attempts ---

    async def check_address(self, ip: str | None) -> None:
        """Refuse an address that has used up its failed attempts.

        Raises:
            RateLimitedError: `limit="ip"`, with the seconds until the window closes.
            LimitsUnavailableError: the store cannot be reached.
        """
        bucket = address_key(ip)
        now = self._clock.now().timestamp()
        memo = self._memo.get(bucket)
        if memo is not None and memo[0] > now:
            if memo[1]:
                self._refuse("ip", memo[0] - now)
            return
        hit = await self._store.peek(f"ip:{bucket}")
        if hit.count >= self._policy.ip_failure_limit:
            self._remember(bucket, now + hit.reset_after, blocked=True)
            self._refuse("ip", hit.reset_after)
        self._remember(bucket, now + self._memo_seconds, blocked=False)

    async def address_failed(self, ip: str | None) -> None:
        """Count one failed credential attempt of the address.

        Raises:
            RateLimitedError: the address was already past its limit when this failure
                was counted (it passed `check_address` before others landed): answer 429,
                not the failure's own verdict.
            LimitsUnavailableError: the store cannot be reached.
        """
        bucket = address_key(ip)
        hit = await self._store.count(f"ip:{bucket}", window=self._policy.ip_failure_window)
        if hit.count >= self._policy.ip_failure_limit:
            now = self._clock.now().timestamp()
            self._remember(bucket, now + hit.reset_after, blocked=True)
            if hit.count > self._policy.ip_failure_limit:
                self._refuse("ip", hit.reset_after)

    # --- per name: lockout ---

    async def check_account(self, canonical: str) -> None:
        """Refuse a locked name, before any password is checked.

        Raises:
            AccountLockedError: with the seconds until the lock ends.
            LimitsUnavailableError: the store cannot be reached.
        """
        remaining = await self._store.lock_remaining(_name_key(canonical))
        if remaining > 0:
            metrics.RATE_LIMITED.labels(limit="account").inc()
            raise AccountLockedError(retry_after=remaining)

    async def account_failed(self, canonical: str) -> bool:
        """Count one failure of the name; True when this failure locked it.

        Raises:
            AccountLockedError: the name was locked already when this failure was counted
                (a parallel attempt locked it first): answer 429, not 401.
            LimitsUnavailableError: the store cannot be reached.
        """
        result = await self._store.lock_failure(_name_key(canonical), self._policy.lock)
        if result.state is LockState.ALREADY_LOCKED:
            metrics.RATE_LIMITED.labels(limit="account").inc()
            raise AccountLockedError(retry_after=result.retry_after)
        if result.state is LockState.LOCKED:
            metrics.LOCKOUTS.inc()
            return True
        return False

    async def account_succeeded(self, canonical: str) -> None:
        """Clear the name's failures and its lock level.

        Raises:
            AccountLockedError: a parallel attempt locked the name while this one was
                being checked: even the right password is refused while it is locked.
            LimitsUnavailableError: the store cannot be reached.
        """
        remaining = await self._store.lock_success(_name_key(canonical))
        if remaining > 0:
            metrics.RATE_LIMITED.labels(limit="account").inc()
            raise AccountLockedError(retry_after=remaining)

    async def account_reset(self, canonical: str) -> None:
        """Unlock the name and forget its failures and lock level: for a password reset,
        which proved control of the account's mailbox (whoever has it could reset anyway),
        so that an owner whose name an attacker keeps locked can get back in at once.

        Raises:
            LimitsUnavailableError: the store cannot be reached.
        """
        await self._store.lock_clear(_name_key(canonical))

    # --- per address, every attempt ---

    async def registration(self, ip: str | None) -> None:
        """Count one registration attempt of the address.

        Raises:
            RateLimitedError: `limit="register"`, past `register_ip_limit` per window.
            LimitsUnavailableError: the store cannot be reached.
        """
        await self._attempt(
            "register", ip, self._policy.register_limit, self._policy.register_window
        )

    async def recovery(self, ip: str | None) -> None:
        """Count one recovery request (password forgot, verification mail) of the address.

        Raises:
            RateLimitedError: `limit="recovery"`, past `recovery_ip_limit` per window.
            LimitsUnavailableError: the store cannot be reached.
        """
        await self._attempt(
            "recovery", ip, self._policy.recovery_limit, self._policy.recovery_window
        )

    async def mail_allowed(self, address_key: str) -> bool:
        """Count one mail to an address (`address_key`: an opaque digest of its canonical
        form); False once `MAIL_LIMIT` mails were counted for it within the window.

        Raises:
            LimitsUnavailableError: the store cannot be reached.
        """
        hit = await self._store.count(f"mail:{address_key}", window=MAIL_WINDOW_SECONDS)
        if hit.count > MAIL_LIMIT:
            metrics.RATE_LIMITED.labels(limit="mail").inc()
            return False
        return True

    # --- both at once ---

    async def credential_failed(self, ip: str | None, canonical: str | None) -> bool:
        """Count one failed attempt of the address and, when given, of the name; both are
        counted whatever either answers. True when this failure locked the name.

        Raises:
            RateLimitedError: the address was past its limit already (see `address_failed`).
            AccountLockedError: the name was locked already (see `account_failed`).
            LimitsUnavailableError: the store cannot be reached.
        """
        locked = False
        refused: AccountLockedError | None = None
        if canonical is not None:
            try:
                locked = await self.account_failed(canonical)
            except AccountLockedError as exc:
                refused = exc
        await self.address_failed(ip)
        if refused is not None:
            raise refused
        return locked

    def attempt(
        self,
        ip: str | None,
        *,
        account: str | None = None,
        on_lock: Callable[[], None] | None = None,
    ) -> CredentialAttempt:
        """`async with guard.attempt(ip):` around the check of a credential: the address
        (and the name, when given) is checked on entry; a credential failure raised inside
        (`is_credential_failure`) is counted on the way out, and a success of a name clears
        its failures (unless a parallel attempt locked it meanwhile: then the block's
        success stands and the lock stays). `on_lock` is called when a failure counted on
        the way out locked the name (to record `account.locked`)."""
        return CredentialAttempt(self, ip, account, on_lock)

    async def close(self) -> None:
        await self._store.close()

    async def _attempt(self, limit: str, ip: str | None, most: int, window: float) -> None:
        hit = await self._store.count(f"{limit}:{address_key(ip)}", window=window)
        if hit.count > most:
            self._refuse(limit, hit.reset_after)

    def _refuse(self, limit: str, retry_after: float) -> NoReturn:
        metrics.RATE_LIMITED.labels(limit=limit).inc()
        raise RateLimitedError(retry_after=retry_after, limit=limit)

    def _remember(self, bucket: str, until: float, *, blocked: bool) -> None:
        self._memo.pop(bucket, None)
        if len(self._memo) >= self._memo_capacity:
            del self._memo[next(iter(self._memo))]
        self._memo[bucket] = (until, blocked)


def is_credential_failure(exc: BaseException) -> bool:
    """Whether an error means "a credential was presented and was wrong": a wrong password,
    API key, client secret, refresh token, fingerprint or license key. A request that sent
    no credential at all (`NotAuthenticatedError`) is not a guess."""
    return isinstance(exc, AuthenticationError | InvalidGrantError) and not isinstance(
        exc, NotAuthenticatedError
    )


class CredentialAttempt:
    """The async context manager of `AbuseGuard.attempt` (a class: this runs on every
    API-key and device request, where a generator-based manager costs a few microseconds)."""

    __slots__ = ("_account", "_guard", "_ip", "_on_lock")

    def __init__(
        self,
        guard: AbuseGuard,
        ip: str | None,
        account: str | None,
        on_lock: Callable[[], None] | None = None,
    ) -> None:
        self._guard = guard
        self._ip = ip
        self._account = account
        self._on_lock = on_lock

    async def __aenter__(self) -> None:
        await self._guard.check_address(self._ip)
        if self._account is not None:
            await self._guard.check_account(self._account)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is None:
            if self._account is not None:
                # A parallel attempt may have locked the name after the check on entry; the
                # block has done its work by now (a password change is committed), and its
                # answer must say so. The lock stays; nothing was cleared.
                with contextlib.suppress(AccountLockedError):
                    await self._guard.account_succeeded(self._account)
        # Raises instead of the failure when a parallel attempt used up the limit.
        elif is_credential_failure(exc) and (
            await self._guard.credential_failed(self._ip, self._account) and self._on_lock
        ):
            self._on_lock()
