"""The shape of an API key: `ghk_<id>_<secret>`, made and taken apart in one place.

- `ghk`: a fixed prefix, so secret scanners (and people) can tell a Gatehouse key.
- `<id>`: 16 letters and digits, public (it is in the key's record as `client_id`
  `ghk_<id>`); storage finds the key by it with one index lookup.
- `<secret>`: 32 letters and digits from `secrets` (62^32, about 190 bits).

Letters and digits only, so the key splits unambiguously at its two underscores, survives
URLs, headers and shells unquoted, and double-click selects it whole.
"""

from __future__ import annotations

import re
import secrets
import string

from gatehouse.server.apikeys.models import API_KEY_PREFIX

PUBLIC_ID_LENGTH = 16
SECRET_LENGTH = 32
MAX_KEY_LENGTH = 256
_ALPHABET = string.ascii_letters + string.digits
_PUBLIC_ID = re.compile(rf"[A-Za-z0-9]{{{PUBLIC_ID_LENGTH}}}")
_SECRET = re.compile(rf"[A-Za-z0-9]{{{SECRET_LENGTH}}}")


def _random(length: int) -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(length))


def new_key() -> tuple[str, str]:
    """A fresh `(public_id, full key)`."""
    public_id = _random(PUBLIC_ID_LENGTH)
    return public_id, f"{API_KEY_PREFIX}_{public_id}_{_random(SECRET_LENGTH)}"


def looks_like_key(value: str) -> bool:
    """Whether a bearer credential is meant as an API key (it starts with our prefix)."""
    return value.startswith(API_KEY_PREFIX + "_")


def split_key(key: str) -> str | None:
    """The public id of a well-formed key; None for anything else (never an exception)."""
    if len(key) > MAX_KEY_LENGTH or not key.isascii():
        return None
    parts = key.split("_")
    if len(parts) != 3 or parts[0] != API_KEY_PREFIX:
        return None
    if _PUBLIC_ID.fullmatch(parts[1]) is None or _SECRET.fullmatch(parts[2]) is None:
        return None
    return parts[1]


def join_client_credentials(client_id: str, client_secret: str) -> str:
    """The full key from OAuth client credentials (`ghk_<id>`, `<secret>`)."""
    return f"{client_id}_{client_secret}"
