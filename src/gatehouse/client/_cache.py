"""The on-disk cache of the last license file and JWKS, for runs while the server is away.

`cache_dir` holds `license.jwt` and `jwks.json`. The directory is made 0700 and each file
0600 from its creation (never widened, then narrowed); writes are atomic (a temp file in
the same directory, fsync, `os.replace`), so a crash leaves the old file or the new one,
never half of one. A cache that cannot be written costs only the offline fallback, so
write failures are logged, not raised. Standard library only.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

logger = logging.getLogger("gatehouse.client")

LICENSE_FILE = "license.jwt"
JWKS_FILE = "jwks.json"
# Far above a real license file (8 KiB at most) or key set; a bigger file is not ours.
_READ_LIMIT = 1024 * 1024


def write_atomic(path: Path, data: bytes) -> None:
    """Replace `path` by a file holding `data`, mode 0600, atomically.

    Raises:
        OSError: the file could not be written; `path` is then unchanged.
    """
    # mkstemp creates the file with os.open(O_CREAT | O_EXCL, 0o600).
    fd, temp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temp_name, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp_name)
        raise
    _sync_directory(path.parent)


def _sync_directory(directory: Path) -> None:
    # POSIX: the rename itself is durable only once the directory is synced. Windows
    # cannot open a directory this way, and there the rename is already journaled.
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class LicenseCache:
    """The files of one cache directory."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def _ensure_directory(self) -> None:
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)

    def _save(self, name: str, data: bytes) -> None:
        try:
            self._ensure_directory()
            write_atomic(self.directory / name, data)
        except OSError as exc:
            logger.warning("could not write %s to the license cache: %s", name, exc)

    def _read(self, name: str) -> bytes | None:
        try:
            with (self.directory / name).open("rb") as file:
                return file.read(_READ_LIMIT)
        except FileNotFoundError:
            return None
        except OSError as exc:
            logger.warning("could not read %s from the license cache: %s", name, exc)
            return None

    def save_license(self, token: str) -> None:
        self._save(LICENSE_FILE, token.encode("ascii"))

    def save_jwks(self, jwks: dict[str, Any]) -> None:
        self._save(JWKS_FILE, json.dumps(jwks, separators=(",", ":")).encode("utf-8"))

    def read_license(self) -> str | None:
        """The cached license file, undecoded bytes read as latin-1 (verification judges)."""
        data = self._read(LICENSE_FILE)
        return None if data is None else data.decode("latin-1")

    def read_jwks(self) -> Any:
        """The cached key set as parsed JSON (any shape; verification judges), or None."""
        data = self._read(JWKS_FILE)
        if data is None:
            return None
        try:
            return json.loads(data)
        except (ValueError, RecursionError):  # RecursionError: absurdly nested JSON
            return {}

    def forget_license(self) -> None:
        """Delete the cached license file (the server refused this machine)."""
        try:
            (self.directory / LICENSE_FILE).unlink(missing_ok=True)
        except OSError as exc:
            logger.warning("could not delete the cached license file: %s", exc)
