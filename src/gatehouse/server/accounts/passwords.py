"""Password policy and hashing.

Policy: RFC 8265 OpaqueString normalisation, applied the same way on set and on verify;
8 to 256 characters after it (a documented cap, never a silent truncation); not one of the
most common passwords; not the username.

Hashing: argon2id through pwdlib. The `owasp` profile is OWASP's first recommended
configuration (m=19 MiB, t=2, p=1); `test` is cheap and only for test suites. bcrypt hashes of
imported users verify and are re-hashed to argon2id on the next login. Hashing runs on a pool
of `concurrency` threads of its own (argon2 releases the GIL), so logins never block the event
loop and a burst cannot run more hashes than there are cores: the rest wait in the pool's
queue. A pool thread that finishes a hash takes the next queued one itself, without waiting
for the event loop to hand it over, so the cores stay busy with hashes however busy the
loop is (with anyio's limiter, each slot sat idle for a loop turn between hashes: about 8%
of login capacity under load).

Load shedding: at most `concurrency + queue_max` hashes are running or waiting at once in a
process. A request takes its place with `reserve()` (synchronous, so there is no window
between checking the queue and joining it) before any other costly work; when every place is
taken it gets `OverloadedError` (503 with Retry-After) at once, instead of a place in a queue
it would leave only after its client gave up. `hash`, `verify` and `burn` called without a
slot reserve one themselves, so registration, password change and reset are bounded too.
`gatehouse_hash_queue_depth` is the number of places taken.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from types import TracebackType
from typing import Literal, TypeVar

import bcrypt
import precis_i18n
from pwdlib import PasswordHash
from pwdlib.exceptions import UnknownHashError
from pwdlib.hashers.argon2 import Argon2Hasher
from pwdlib.hashers.bcrypt import BcryptHasher

from gatehouse.server import metrics
from gatehouse.server.accounts.blocklist import COMMON_PASSWORDS
from gatehouse.server.errors import OverloadedError, WeakPasswordError

PASSWORD_MIN_LENGTH = 8
PASSWORD_MAX_LENGTH = 256
_OPAQUE = precis_i18n.get_profile("OpaqueString")
_T = TypeVar("_T")

HashProfile = Literal["owasp", "test"]
# (memory KiB, iterations, lanes) per profile.
ARGON2_PROFILES: dict[str, tuple[int, int, int]] = {
    # OWASP Password Storage Cheat Sheet: argon2id, m=19456 KiB, t=2, p=1.
    "owasp": (19456, 2, 1),
    # Fast enough for thousands of logins in a test run; never for real users.
    "test": (64, 1, 1),
}


def normalise_password(raw: str) -> str:
    """Apply OpaqueString; the result is what gets hashed, on set and on verify alike.

    Raises:
        WeakPasswordError: the password has characters the profile disallows.
    """
    if len(raw) > PASSWORD_MAX_LENGTH * 4:
        raise WeakPasswordError("Passwords have at most 256 characters.", field="password")
    try:
        return str(_OPAQUE.enforce(raw))
    except UnicodeError as exc:
        raise WeakPasswordError(
            "Passwords may not contain control or unassigned characters.", field="password"
        ) from exc


def check_new_password(raw: str, *, username_canonical: str | None = None) -> str:
    """Normalise a new password and apply the policy; return the normalised form.

    Raises:
        WeakPasswordError: too short, too long, too common, equal to the username, or
            containing disallowed characters.
    """
    password = normalise_password(raw)
    if len(password) < PASSWORD_MIN_LENGTH:
        raise WeakPasswordError("Passwords have at least 8 characters.", field="password")
    if len(password) > PASSWORD_MAX_LENGTH:
        raise WeakPasswordError("Passwords have at most 256 characters.", field="password")
    folded = password.casefold()
    if folded in COMMON_PASSWORDS:
        raise WeakPasswordError("That password is too common.", field="password")
    if username_canonical is not None and folded == username_canonical.casefold():
        raise WeakPasswordError("The password may not be the username.", field="password")
    return password


class _LegacyBcryptHasher(BcryptHasher):
    """Verifies imported bcrypt hashes as the systems that made them did.

    bcrypt reads at most 72 bytes; the libraries that produced imported hashes dropped the
    rest silently, and bcrypt 5 refuses longer input, so verification truncates likewise.
    Gatehouse never creates bcrypt hashes: a match is re-hashed to argon2id at once.
    """

    def verify(self, password: str | bytes, hash: str | bytes) -> bool:
        data = password.encode() if isinstance(password, str) else password
        stored = hash.encode() if isinstance(hash, str) else hash
        return bcrypt.checkpw(data[:72], stored)


class HashSlot:
    """One place among the hashes running or waiting; released on leaving the `with` (or
    by `release`, which is idempotent)."""

    __slots__ = ("_hasher", "_held")

    def __init__(self, hasher: PasswordHasher) -> None:
        self._hasher = hasher
        self._held = True

    def release(self) -> None:
        if self._held:
            self._held = False
            self._hasher._release()

    def __enter__(self) -> HashSlot:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()


class PasswordHasher:
    """Hashes and verifies passwords off the event loop, at most `concurrency` at a time
    and at most `queue_max` more waiting."""

    def __init__(
        self, profile: HashProfile = "owasp", *, concurrency: int = 1, queue_max: int = 32
    ) -> None:
        if queue_max < 0:
            raise ValueError("queue_max must not be negative")
        self._capacity = concurrency + queue_max
        self._taken = 0
        memory, iterations, lanes = ARGON2_PROFILES[profile]
        argon2 = Argon2Hasher(memory_cost=memory, time_cost=iterations, parallelism=lanes)
        self._hash = PasswordHash((argon2, _LegacyBcryptHasher()))
        self._pool = ThreadPoolExecutor(
            max_workers=concurrency, thread_name_prefix="gatehouse-hash"
        )
        # Unknown users are checked against this hash so their timing matches known ones.
        self._dummy_hash = self._hash.hash(secrets.token_urlsafe(16))

    @property
    def taken(self) -> int:
        """Places taken now: hashes running, waiting, or reserved and about to be."""
        return self._taken

    def reserve(self) -> HashSlot:
        """Take a place for the hashes of one request; use it as `with hasher.reserve() as
        slot:` and pass `slot=` to the calls inside.

        Raises:
            OverloadedError: every place is taken (503 `overloaded`, Retry-After).
        """
        if self._taken >= self._capacity:
            metrics.RATE_LIMITED.labels(limit="hash_queue").inc()
            raise OverloadedError
        self._taken += 1
        metrics.HASH_QUEUE_DEPTH.inc()
        return HashSlot(self)

    def _release(self) -> None:
        self._taken -= 1
        metrics.HASH_QUEUE_DEPTH.dec()

    async def hash(self, password: str, *, slot: HashSlot | None = None) -> str:
        """Raises: OverloadedError (only without a `slot`)."""
        return await self._run(slot, self._hash.hash, password)

    async def verify(
        self, password: str, password_hash: str, *, slot: HashSlot | None = None
    ) -> tuple[bool, str | None]:
        """Return `(matches, new_hash)`; `new_hash` is set when the stored hash is outdated.

        Raises: OverloadedError (only without a `slot`).
        """
        return await self._run(slot, self._verify_sync, password, password_hash)

    async def burn(self, password: str, *, slot: HashSlot | None = None) -> None:
        """Spend the time of one verification, for a user that does not exist.

        Raises: OverloadedError (only without a `slot`).
        """
        await self.verify(password, self._dummy_hash, slot=slot)

    def close(self) -> None:
        """Stop the pool's threads; queued hashes are dropped."""
        self._pool.shutdown(wait=False, cancel_futures=True)

    async def _run(self, slot: HashSlot | None, fn: Callable[..., _T], *args: str) -> _T:
        # A caller that goes away (a client that disconnected) cancels its queued hash and
        # frees its place; a hash already running finishes on its thread regardless.
        if slot is None:
            with self.reserve():
                return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    def _verify_sync(self, password: str, password_hash: str) -> tuple[bool, str | None]:
        try:
            return self._hash.verify_and_update(password, password_hash)
        except (UnknownHashError, ValueError):
            # An unrecognised or corrupt stored hash matches nothing.
            return False, None
