"""Helpers shared by the per-platform hardware readers: run a tool, gather, clean, MACs.

Every reader may fail; a failure only drops its component. Tools run without a shell, from
absolute paths, with a short timeout and a C locale, so their output parses the same
everywhere. Standard library only.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence

#: Seconds a tool may take before its component is dropped.
TOOL_TIMEOUT = 3.0

Reader = Callable[[], str | None]

_MAC = re.compile(r"(?<![0-9a-f])(?:[0-9a-f]{2}[:-]){5}[0-9a-f]{2}(?![0-9a-f])", re.IGNORECASE)

# Vendors fill unset SMBIOS fields with these; two machines sharing one must not match on it.
_PLACEHOLDERS = frozenset(
    {
        "none",
        "null",
        "n/a",
        "na",
        "unknown",
        "invalid",
        "empty",
        "default",
        "default string",
        "not specified",
        "not available",
        "not applicable",
        "to be filled by o.e.m.",
        "to be filled by oem",
        "o.e.m.",
        "oem",
        "system serial number",
        "system product name",
        "base board serial number",
        "chassis serial number",
        "serial number",
        "0123456789",
        "123456789",
        "1234567890",
        # A UUID some AMI BIOSes ship in every unit.
        "03000200-0400-0500-0006-000700080009",
    }
)


if sys.platform == "win32":
    # No console window flashes up when a GUI program runs a tool.
    _CREATION_FLAGS = subprocess.CREATE_NO_WINDOW
else:
    _CREATION_FLAGS = 0


def _environment() -> dict[str, str] | None:
    if sys.platform == "win32":
        return None
    return {**os.environ, "LC_ALL": "C"}


def run(argv: Sequence[str], *, timeout: float = TOOL_TIMEOUT) -> str | None:
    """Run a tool and return its standard output, or None if it failed in any way."""
    try:
        done = subprocess.run(  # noqa: S603 -- a fixed absolute path and fixed arguments, no shell
            list(argv),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=timeout,
            check=False,
            env=_environment(),
            creationflags=_CREATION_FLAGS,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if done.returncode != 0:
        return None
    return done.stdout.decode("utf-8", errors="replace")


def clean(value: str) -> str | None:
    """Normalise a raw value (whitespace collapsed, lower case); None for placeholders."""
    text = " ".join(value.split()).lower()
    if not text or text in _PLACEHOLDERS:
        return None
    # All zeros, all Fs and the like: an unset field, not an identity.
    if len(set(text) - set(" -:.")) <= 1:
        return None
    return text


def gather(readers: Mapping[str, Reader]) -> dict[str, str]:
    """Call each reader; keep the cleaned values of those that succeed and find something."""
    found: dict[str, str] = {}
    for name, read in readers.items():
        try:
            value = read()
        except (OSError, ValueError, subprocess.SubprocessError):
            continue
        cleaned = clean(value) if value is not None else None
        if cleaned is not None:
            found[name] = cleaned
    return found


def normal_mac(text: str) -> str | None:
    """The first MAC address in `text` as `aa:bb:cc:dd:ee:ff`; None if absent or not unicast.

    All-zero, broadcast and multicast addresses name no adapter and are refused.
    """
    match = _MAC.search(text)
    if match is None:
        return None
    mac = match.group(0).lower().replace("-", ":")
    # The low bit of the first octet marks group addresses (multicast, broadcast).
    if int(mac[:2], 16) & 1 or mac == "00:00:00:00:00:00":
        return None
    return mac


def join_macs(addresses: Iterable[str]) -> str | None:
    """One value for a set of MAC addresses: the valid ones, sorted, comma-separated."""
    macs = sorted({mac for text in addresses if (mac := normal_mac(text)) is not None})
    return ",".join(macs) or None
