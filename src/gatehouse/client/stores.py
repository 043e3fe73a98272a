"""Where the client keeps its tokens: the `TokenStore` protocol and two stores.

- `MemoryTokenStore` (the default): tokens live as long as the client object.
- `FileTokenStore(path)`: one JSON file, mode 0600 from the moment it exists (`os.open`),
  replaced atomically (a temp file beside it, fsync, `os.replace`), so a reader sees the old
  tokens or the new ones, never half. `lock()` holds an exclusive lock on a sibling
  `<name>.lock` file (`fcntl.flock` on POSIX, `msvcrt.locking` on Windows, best effort)
  that the client takes around read-refresh-write, so two processes sharing the file never
  both spend one refresh token (the server would revoke the session: RFC 9700 s4.14.2).

A store of your own (the OS keyring, say) implements the four methods of `TokenStore`.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import sys
from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable


@dataclass(frozen=True, slots=True)
class StoredTokens:
    """What a store keeps: the tokens and when the access token expires.

    Attributes:
        access_token: the bearer token to send.
        refresh_token: the session's current refresh token; None for an API-key login.
        expires_at: when the access token expires, in seconds since the epoch (the client's clock).
        session_id: the session's id; None for an API-key login.
    """

    access_token: str
    refresh_token: str | None
    expires_at: float
    session_id: str | None

    def __repr__(self) -> str:
        return f"StoredTokens(session_id={self.session_id}, expires_at={self.expires_at})"


@runtime_checkable
class TokenStore(Protocol):
    """Keeps one login's tokens. Methods are called from any thread; keep them short.

    - `load()`: the stored tokens, or None when logged out (or the record is unreadable).
    - `save(tokens)`: replace what is stored, all at once.
    - `clear()`: forget the tokens (logout, revocation).
    - `lock()`: a context manager held around load-refresh-save. Processes sharing the
      store must exclude each other in it; in-process callers are already serialised by
      the client, so a store used by one process may return `contextlib.nullcontext()`.
    """

    def load(self) -> StoredTokens | None: ...

    def save(self, tokens: StoredTokens) -> None: ...

    def clear(self) -> None: ...

    def lock(self) -> AbstractContextManager[object]: ...


class MemoryTokenStore:
    """Tokens in memory only: gone when the program ends."""

    def __init__(self) -> None:
        self._tokens: StoredTokens | None = None

    def load(self) -> StoredTokens | None:
        return self._tokens

    def save(self, tokens: StoredTokens) -> None:
        self._tokens = tokens

    def clear(self) -> None:
        self._tokens = None

    def lock(self) -> AbstractContextManager[object]:
        return contextlib.nullcontext()


class FileTokenStore:
    """Tokens in one JSON file (mode 0600), shared safely by the processes that use it."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.lock_path = self.path.with_name(self.path.name + ".lock")

    def load(self) -> StoredTokens | None:
        try:
            raw = json.loads(self.path.read_bytes())
            return StoredTokens(
                access_token=str(raw["access_token"]),
                refresh_token=None if raw["refresh_token"] is None else str(raw["refresh_token"]),
                expires_at=float(raw["expires_at"]),
                session_id=None if raw["session_id"] is None else str(raw["session_id"]),
            )
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def save(self, tokens: StoredTokens) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        temp = self.path.with_name(f".{self.path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            with os.fdopen(fd, "wb") as file:
                file.write(json.dumps(asdict(tokens)).encode())
                file.flush()
                os.fsync(file.fileno())
            os.replace(temp, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temp)
            raise

    def clear(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)

    def lock(self) -> AbstractContextManager[object]:
        return self._locked()

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.lock_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            _lock_fd(fd)
            try:
                yield
            finally:
                _unlock_fd(fd)
        finally:
            os.close(fd)


if sys.platform == "win32":  # pragma: no cover - exercised on Windows only
    import msvcrt

    def _lock_fd(fd: int) -> None:
        # Best effort: LK_LOCK retries for about 10 s, then raises OSError.
        msvcrt.locking(fd, msvcrt.LK_LOCK, 1)

    def _unlock_fd(fd: int) -> None:
        os.lseek(fd, 0, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)

else:
    import fcntl

    def _lock_fd(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_EX)

    def _unlock_fd(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_UN)
