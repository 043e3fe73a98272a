"""Hardware readers for macOS: the system's own tools, asked for property lists where they can.

`ioreg`, `sysctl`, `networksetup` and `diskutil` run from /usr/sbin without a shell; their
plist output is parsed with `plistlib`, so no text scraping depends on the locale.
Standard library only.
"""

from __future__ import annotations

import plistlib
from pathlib import Path
from typing import Any
from xml.parsers.expat import ExpatError

from gatehouse.client._probe import gather, normal_mac, run

NAMES = ("product_uuid", "product_serial", "cpu", "mac", "root_fs")

_IOREG = "/usr/sbin/ioreg"
_SYSCTL = "/usr/sbin/sysctl"
_NETWORKSETUP = "/usr/sbin/networksetup"
_DISKUTIL = "/usr/sbin/diskutil"
# Since macOS 10.15 `/` is a sealed system snapshot replaced by every OS update; the data
# volume beside it keeps its UUID until the disk is erased.
_DATA_VOLUME = Path("/System/Volumes/Data")


def _plist(text: str | None) -> Any:
    """The parsed property list, or None when there is none or it does not parse."""
    if text is None:
        return None
    try:
        return plistlib.loads(text.encode("utf-8"))
    except (ValueError, ExpatError):
        return None


def parse_platform_expert(text: str | None) -> dict[str, str]:
    """IOPlatformUUID and IOPlatformSerialNumber from `ioreg -a -rd1 -c IOPlatformExpertDevice`."""
    data = _plist(text)
    entry = data[0] if isinstance(data, list) and data else data
    if not isinstance(entry, dict):
        return {}
    wanted = {"product_uuid": "IOPlatformUUID", "product_serial": "IOPlatformSerialNumber"}
    return {name: value for name, key in wanted.items() if isinstance(value := entry.get(key), str)}


def parse_volume_uuid(text: str | None) -> str | None:
    """The VolumeUUID from `diskutil info -plist <mount point>`."""
    data = _plist(text)
    value = data.get("VolumeUUID") if isinstance(data, dict) else None
    return value if isinstance(value, str) else None


def _volume_uuid() -> str | None:
    mount_point = str(_DATA_VOLUME) if _DATA_VOLUME.is_dir() else "/"
    return parse_volume_uuid(run([_DISKUTIL, "info", "-plist", mount_point]))


def _mac() -> str | None:
    # The hardware address of en0 (built-in Ethernet or Wi-Fi); `ifconfig` would show the
    # private address Wi-Fi uses on some networks, which changes.
    output = run([_NETWORKSETUP, "-getmacaddress", "en0"])
    return normal_mac(output) if output is not None else None


def read() -> dict[str, str]:
    """Every component this Mac yields, as cleaned raw values."""
    platform = parse_platform_expert(run([_IOREG, "-a", "-rd1", "-c", "IOPlatformExpertDevice"]))
    return gather(
        {
            "product_uuid": lambda: platform.get("product_uuid"),
            "product_serial": lambda: platform.get("product_serial"),
            "cpu": lambda: run([_SYSCTL, "-n", "machdep.cpu.brand_string"]),
            "mac": _mac,
            "root_fs": _volume_uuid,
        }
    )
