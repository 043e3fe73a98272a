"""One refresh at a time: the access token of a login, renewed before it expires.

`TokenKeeper` (threads) and `AsyncTokenKeeper` (tasks) answer "which access token do I
send?". A token that is fresh enough is read from the store without a lock. Otherwise the
caller takes the in-process lock (`threading.Lock` / `asyncio.Lock`), then the store's own
lock (another process may share it), reads the store again and renews only if the token is
still the one that needed renewing. Callers that queued behind a refresh find the new token
and send it, so twenty concurrent calls with an expired token make one `POST /auth/refresh`
and no refresh token is ever presented twice (the server revokes a session whose rotated
refresh token comes back: RFC 9700 s4.14.2).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from contextlib import AbstractContextManager

from gatehouse.client.errors import SessionRevoked
from gatehouse.client.stores import StoredTokens, TokenStore

Clock = Callable[[], float]


def _not_logged_in() -> SessionRevoked:
    return SessionRevoked("not logged in: log in first (or the session was revoked)")


def _due(tokens: StoredTokens, now: float, margin: float) -> bool:
    return now >= tokens.expires_at - margin


def _stale(tokens: StoredTokens, stale: str | None, now: float, margin: float) -> bool:
    """Whether `tokens` must be renewed: the rejected token is still stored, or it is due."""
    if stale is not None:
        return tokens.access_token == stale
    return _due(tokens, now, margin)


class TokenKeeper:
    """The sync client's tokens, renewed by `renew` under a lock."""

    def __init__(
        self,
        store: TokenStore,
        clock: Clock,
        margin: float,
        renew: Callable[[StoredTokens], StoredTokens],
    ) -> None:
        self.store = store
        self._clock = clock
        self._margin = margin
        self._renew = renew
        self._lock = threading.Lock()

    def access_token(self, *, stale: str | None = None) -> str:
        """A token to send: renewed if it expires within the margin, or if it is `stale`
        (the one a server just refused with 401).

        Raises:
            SessionRevoked: not logged in, or the server refused the refresh.
        """
        tokens = self.store.load()
        if tokens is None:
            raise _not_logged_in()
        if not _stale(tokens, stale, self._clock(), self._margin):
            return tokens.access_token
        return self.renewed(stale=stale, force=False).access_token

    def renewed(self, *, stale: str | None = None, force: bool = True) -> StoredTokens:
        """Renew under both locks (unless another caller just did) and store the result."""
        with self._lock, self.store.lock():
            tokens = self.store.load()
            if tokens is None:
                raise _not_logged_in()
            if not force and not _stale(tokens, stale, self._clock(), self._margin):
                return tokens
            fresh = self._renew(tokens)
            self.store.save(fresh)
            return fresh


async def _enter_in_thread(held: AbstractContextManager[object]) -> None:
    """Enter `held` in a worker thread. If the caller is cancelled meanwhile, the lock is
    released as soon as the thread gets it, so a cancelled task never leaves it held."""
    entering = asyncio.ensure_future(asyncio.to_thread(held.__enter__))
    try:
        await asyncio.shield(entering)
    except asyncio.CancelledError:

        def release(done: asyncio.Future[object]) -> None:
            if not done.cancelled() and done.exception() is None:
                held.__exit__(None, None, None)

        entering.add_done_callback(release)
        raise


class AsyncTokenKeeper:
    """The async client's tokens: the same rules, an `asyncio.Lock` in process."""

    def __init__(
        self,
        store: TokenStore,
        clock: Clock,
        margin: float,
        renew: Callable[[StoredTokens], Awaitable[StoredTokens]],
    ) -> None:
        self.store = store
        self._clock = clock
        self._margin = margin
        self._renew = renew
        self._lock = asyncio.Lock()

    async def access_token(self, *, stale: str | None = None) -> str:
        """See `TokenKeeper.access_token`."""
        tokens = self.store.load()
        if tokens is None:
            raise _not_logged_in()
        if not _stale(tokens, stale, self._clock(), self._margin):
            return tokens.access_token
        return (await self.renewed(stale=stale, force=False)).access_token

    async def renewed(self, *, stale: str | None = None, force: bool = True) -> StoredTokens:
        """See `TokenKeeper.renewed`."""
        async with self._lock:
            # The store's lock may wait for another process: wait in a worker thread, so
            # the event loop runs on. A flock belongs to the file, not the thread.
            held = self.store.lock()
            await _enter_in_thread(held)
            try:
                tokens = self.store.load()
                if tokens is None:
                    raise _not_logged_in()
                if not force and not _stale(tokens, stale, self._clock(), self._margin):
                    return tokens
                fresh = await self._renew(tokens)
                self.store.save(fresh)
                return fresh
            finally:
                held.__exit__(None, None, None)
