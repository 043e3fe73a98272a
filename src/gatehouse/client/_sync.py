"""`Client`: log in to Gatehouse and stay logged in, over `httpx.Client`.

The twin of `AsyncClient` (`_async.py`): the same methods, arguments, results and errors.
Every answer is read by `_protocol.py`; tokens are kept by the store and renewed by the
keeper (`_keeper.py`), which also serves `Client.auth` for calls to other services.
"""

from __future__ import annotations

import time
from types import TracebackType
from typing import Any
from uuid import UUID

import httpx

from gatehouse.client import _common
from gatehouse.client._keeper import Clock, TokenKeeper
from gatehouse.client._protocol import (
    Attempts,
    RetryPolicy,
    error_for,
    parse,
    parse_list,
    split_api_key,
)
from gatehouse.client.auth import TokenAuth
from gatehouse.client.errors import SessionRevoked
from gatehouse.client.models import ClientToken, SessionInfo, TokenPair, User
from gatehouse.client.stores import MemoryTokenStore, StoredTokens, TokenStore


class Client:
    """A Gatehouse login for sync programs.

    Args:
        base_url: the Gatehouse server (`https://auth.example.com`).
        store: where tokens are kept; `MemoryTokenStore()` unless given. A
            `FileTokenStore` keeps a CLI program logged in across runs.
        timeout: seconds for each HTTP request.
        transport: an httpx transport to send with (tests, proxies).
        retries: further attempts after a connection failure or a 503 (0: none).
        backoff: the first wait between attempts in seconds; it doubles each time.
        max_backoff: the longest wait between attempts.
        retry_deadline: no attempt starts or runs past this many seconds from the first;
            `ServerUnavailable` is raised within it.
        refresh_margin: renew the access token this many seconds before it expires.
        clock: seconds since the epoch (`time.time` unless given) for token expiry.
    """

    def __init__(
        self,
        base_url: str,
        *,
        store: TokenStore | None = None,
        timeout: float = 10.0,
        transport: httpx.BaseTransport | None = None,
        retries: int = 4,
        backoff: float = 0.5,
        max_backoff: float = 8.0,
        retry_deadline: float = 30.0,
        refresh_margin: float = _common.DEFAULT_REFRESH_MARGIN,
        clock: Clock | None = None,
    ) -> None:
        self._http = httpx.Client(
            base_url=base_url,
            timeout=timeout,
            transport=transport,
            headers=_common.DEFAULT_HEADERS,
        )
        self._timeout = timeout
        self._policy = RetryPolicy(retries, backoff, max_backoff, retry_deadline)
        self._clock: Clock = clock or time.time
        self._api_key: str | None = None
        self._last_pair: TokenPair | None = None
        self.store: TokenStore = store if store is not None else MemoryTokenStore()
        self._keeper = TokenKeeper(self.store, self._clock, refresh_margin, self._renew)
        self.auth: httpx.Auth = TokenAuth(self._keeper)
        """Bearer auth with this login for `httpx.Client` calls to other services."""

    # --- sending --------------------------------------------------------------------------

    def _send(
        self, method: str, url: str, *, auth: httpx.Auth | None = None, **kwargs: Any
    ) -> httpx.Response:
        """Send with bounded retries; a 2xx answer, or the matching `AuthError`."""
        attempts = Attempts(self._policy, self._timeout)
        error: httpx.RequestError | None = None
        response: httpx.Response | None = None
        while True:
            timeout = attempts.next_timeout()
            if timeout is None:
                raise attempts.unavailable(error, response) from error
            error = response = None
            try:
                response = self._http.request(
                    method, url, auth=auth or httpx.USE_CLIENT_DEFAULT, timeout=timeout, **kwargs
                )
            except httpx.RequestError as exc:
                error = exc
            if response is not None and response.is_success:
                return response
            if response is not None and response.status_code < 500:
                raise error_for(response, attempts=attempts.count)
            wait = attempts.wait_before_retry(response)
            if wait is None or not Attempts.retryable(method, response, error):
                raise attempts.unavailable(error, response) from error
            time.sleep(wait)

    def _renew(self, tokens: StoredTokens) -> StoredTokens:
        """The keeper's renewal (under its locks): refresh, or a new exchange for a key."""
        if tokens.refresh_token is None:
            if self._api_key is None:
                raise SessionRevoked("this API-key login ended with its process; log in again")
            return _common.stored_client_token(self._exchange(self._api_key), self._clock())
        try:
            response = self._send(
                "POST", "/auth/refresh", json={"refresh_token": tokens.refresh_token}
            )
        except SessionRevoked:
            self.store.clear()
            raise
        self._last_pair = pair = parse(response, TokenPair.from_json)
        return _common.stored_pair(pair, self._clock())

    def _exchange(self, key: str) -> ClientToken:
        client_id, client_secret = split_api_key(key)
        form = _common.client_credentials_form(client_id, client_secret)
        return parse(self._send("POST", "/oauth/token", data=form), ClientToken.from_json)

    def _ended(self, method: str, url: str) -> None:
        """A call that ends the login: the store is cleared once the server has said so."""
        if self.store.load() is None:
            raise SessionRevoked("not logged in")
        try:
            self._send(method, url, auth=self.auth)
        except SessionRevoked:
            self.store.clear()
            raise
        self.store.clear()
        self._api_key = None

    # --- the API --------------------------------------------------------------------------

    def register(self, username: str, password: str, *, email: str | None = None) -> User:
        """Create an account (`POST /auth/register`); it does not log in.

        Raises:
            ApiError: 409 `username_taken`, 422 `invalid_username` / `weak_password`, ...
        """
        body = _common.register_body(username, password, email)
        return parse(self._send("POST", "/auth/register", json=body), User.from_json)

    def login(self, username: str, password: str, *, device_name: str | None = None) -> TokenPair:
        """Log in with a password and keep the new session's tokens in the store.

        Raises:
            InvalidCredentials: wrong username or password, or an inactive account.
        """
        body = _common.login_body(username, password, device_name)
        pair = parse(self._send("POST", "/auth/login", json=body), TokenPair.from_json)
        self._api_key = None
        self.store.save(_common.stored_pair(pair, self._clock()))
        return pair

    def login_with_api_key(self, key: str) -> ClientToken:
        """Trade an API key (`ghk_<id>_<secret>`, whole) for an access token (OAuth client
        credentials). The key stays in this object's memory, never in the store, to renew
        the token; after a restart, log in with the key again.

        Raises:
            InvalidCredentials: the key is malformed, unknown, revoked or expired.
        """
        token = self._exchange(key)
        self._api_key = key
        self.store.save(_common.stored_client_token(token, self._clock()))
        return token

    def refresh(self) -> TokenPair | ClientToken:
        """Renew the access token now (a password login rotates its refresh token).

        Raises:
            SessionRevoked: not logged in, or the server refused the refresh token.
        """
        fresh = self._keeper.renewed()
        if fresh.session_id is None:
            return ClientToken(
                fresh.access_token, "bearer", round(fresh.expires_at - self._clock()), ""
            )
        pair = self._last_pair
        if pair is not None and pair.access_token == fresh.access_token:
            return pair
        assert fresh.refresh_token is not None  # noqa: S101 - a session's tokens have one
        expires_in = round(fresh.expires_at - self._clock())
        return TokenPair(
            fresh.access_token, "bearer", expires_in, fresh.refresh_token, UUID(fresh.session_id)
        )

    def logout(self) -> None:
        """End this session (`POST /auth/logout`) and forget its tokens."""
        tokens = self.store.load()
        if tokens is not None and tokens.session_id is None:
            self.store.clear()
            self._api_key = None
            return
        self._ended("POST", "/auth/logout")

    def logout_all(self) -> None:
        """End every session of this user, this one included, and forget the tokens."""
        self._ended("POST", "/auth/logout-all")

    def me(self) -> User:
        """The logged-in user (`GET /users/me`)."""
        return parse(self._send("GET", "/users/me", auth=self.auth), User.from_json)

    def sessions(self) -> list[SessionInfo]:
        """The user's live sessions (`GET /users/me/sessions`); `current` marks this one."""
        response = self._send("GET", "/users/me/sessions", auth=self.auth)
        return parse_list(response, SessionInfo.from_json)

    def revoke_session(self, session_id: UUID | str) -> None:
        """End one of the user's sessions; ending this one also forgets its tokens.

        Raises:
            ApiError: 404 for an unknown id (or another user's session).
        """
        current = _common.is_current(session_id, self.store.load())
        self._send("DELETE", f"/users/me/sessions/{session_id}", auth=self.auth)
        if current:
            self.store.clear()

    def close(self) -> None:
        """Close the connection pool; the stored tokens stay."""
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
