"""This machine's hardware fingerprint, keyed per application so vendors cannot correlate it.

    from gatehouse.client.hardware import collect

    fp = collect("com.example.app")
    fp.components   # {"machine_id": "3f1c...", "cpu": "9a0b...", ...}, 64 hex each
    fp.fingerprint  # 64 hex: the combination of all components

The platform's readers (`_linux`, `_macos`, `_windows`) gather raw values: machine ids,
serials, MACs, a CPU model. Raw values never leave this module: each component is
HMAC-SHA256 keyed by the `app_id` over `name + "\\0" + raw`, so the server learns only
digests, and two applications (two keys) see unrelated digests for the same machine. The
fingerprint is HMAC-SHA256 under the same key over the sorted `name=digest` lines. A
component that cannot be read is left out; see docs/fingerprints.md. Standard library only.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass

from gatehouse.client import _linux, _macos, _windows
from gatehouse.client.errors import LicenseError

#: The server refuses more components than this.
MAX_COMPONENTS = 32
#: What the server accepts as a component name.
COMPONENT_NAME = re.compile(r"[a-z0-9_.-]{1,64}")


class FingerprintError(LicenseError, OSError):
    """Not one hardware component of this machine could be read: a `LicenseError` (so an
    `AuthError`, like everything the client raises) and, as before, an `OSError`."""


@dataclass(frozen=True, slots=True)
class Fingerprint:
    """The keyed digests of this machine's components, and their combination.

    Attributes:
        components: component name -> HMAC-SHA256 digest (64 lowercase hex).
        fingerprint: HMAC-SHA256 of the sorted `name=digest` lines (64 lowercase hex).
    """

    components: dict[str, str]
    fingerprint: str


def _key(app_id: str) -> bytes:
    if not isinstance(app_id, str) or not app_id:
        raise ValueError("app_id must be a non-empty string")
    return app_id.encode("utf-8")


def digest_component(app_id: str, name: str, raw: str) -> str:
    """One component: HMAC-SHA256 keyed by `app_id` over `name`, a NUL byte and `raw`.

    Raises:
        ValueError: `app_id` is empty.
    """
    message = f"{name}\0{raw}".encode("utf-8", errors="surrogateescape")
    return hmac.new(_key(app_id), message, hashlib.sha256).hexdigest()


def combine(app_id: str, components: Mapping[str, str]) -> str:
    """The fingerprint: HMAC-SHA256 keyed by `app_id` over `name=digest\\n` lines, sorted by name.

    The lines hold no NUL byte, so a fingerprint never equals a component digest.

    Raises:
        ValueError: `app_id` is empty.
    """
    lines = "".join(f"{name}={digest}\n" for name, digest in sorted(components.items()))
    return hmac.new(_key(app_id), lines.encode("utf-8"), hashlib.sha256).hexdigest()


def _read_raw() -> dict[str, str]:
    if sys.platform == "win32":
        return _windows.read()
    if sys.platform == "darwin":
        return _macos.read()
    # Linux, and whatever of its files another Unix happens to have.
    return _linux.read()


def from_raw(app_id: str, raw: Mapping[str, str]) -> Fingerprint:
    """The fingerprint of given raw component values (what `collect` does after reading).

    Raises:
        ValueError: `app_id` is empty, or a name breaks the server's rules.
    """
    _key(app_id)
    if len(raw) > MAX_COMPONENTS:
        raise ValueError(f"at most {MAX_COMPONENTS} components are allowed")
    components: dict[str, str] = {}
    for name, value in sorted(raw.items()):
        if not COMPONENT_NAME.fullmatch(name):
            raise ValueError(f"component name {name!r} is not 1-64 characters of [a-z0-9_.-]")
        components[name] = digest_component(app_id, name, value)
    return Fingerprint(components=components, fingerprint=combine(app_id, components))


def collect(app_id: str) -> Fingerprint:
    """Read this machine's components and return their keyed digests and fingerprint.

    Components that are unavailable (no permission, no such file or tool, a timeout) are
    left out; the call itself does not fail for them.

    Args:
        app_id: the application's identifier, the HMAC key (non-empty, any string).

    Raises:
        ValueError: `app_id` is empty.
        FingerprintError: no component at all could be read.
    """
    _key(app_id)
    raw = _read_raw()
    if not raw:
        raise FingerprintError("no hardware component of this machine could be read")
    return from_raw(app_id, raw)
