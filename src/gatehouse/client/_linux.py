"""Hardware readers for Linux: files under /etc, /proc, /sys and /dev only, no root needed.

Each reader takes `root`, the directory that stands for `/`, so tests run them against a
fake tree. Files that only root may read (most DMI serials) are skipped for other users.
Standard library only.
"""

from __future__ import annotations

import os
import re
import stat
import sys
from functools import partial
from pathlib import Path

from gatehouse.client._probe import Reader, gather, join_macs

NAMES = (
    "machine_id",
    "mac",
    "cpu",
    "root_fs",
    "product_uuid",
    "product_serial",
    "board_serial",
)

_MACHINE_ID = re.compile(r"[0-9a-f]{32}")
_USB_BUS = re.compile(r"usb\d+")
_OCTAL_ESCAPE = re.compile(r"\\([0-7]{3})")
_CPU_KEYS = ("model name", "hardware", "cpu model", "cpu")
# Kernel addr_assign_type: 0 is the address burned into the device; 1 (random) and 3 (set
# by software, e.g. Wi-Fi MAC randomisation) change, so they would break the component.
_PERMANENT_ADDRESS = "0"


def _read_text(path: Path, limit: int = 4096) -> str:
    with path.open("rb") as file:
        return file.read(limit).decode("utf-8")


def read(root: Path = Path("/")) -> dict[str, str]:
    """Every component this machine (seen through `root`) yields, as cleaned raw values."""
    readers: dict[str, Reader] = {
        "machine_id": partial(machine_id, root),
        "mac": partial(mac_addresses, root),
        "cpu": partial(cpu_model, root),
        "root_fs": partial(root_fs_uuid, root),
        "product_uuid": partial(dmi, root, "product_uuid"),
        "product_serial": partial(dmi, root, "product_serial"),
        "board_serial": partial(dmi, root, "board_serial"),
    }
    return gather(readers)


def machine_id(root: Path) -> str | None:
    """systemd's machine id (D-Bus's copy as a fallback), if it is a proper 32-hex id."""
    for relative in ("etc/machine-id", "var/lib/dbus/machine-id"):
        try:
            value = _read_text(root / relative).strip()
        except (OSError, ValueError):
            continue
        # "uninitialized" (first boot) or an empty file is no identity.
        if _MACHINE_ID.fullmatch(value):
            return value
    return None


def mac_addresses(root: Path) -> str | None:
    """The permanent MACs of physical, non-USB interfaces, sorted, as one value."""
    sys_dir = (root / "sys").resolve()
    virtual = sys_dir / "devices" / "virtual"
    found: list[str] = []
    for entry in sorted((root / "sys/class/net").iterdir()):
        if entry.name == "lo":
            continue
        try:
            device = entry.resolve(strict=True)
        except OSError:
            continue
        # Bridges, bonds, VPN tunnels, containers' veths: all live under devices/virtual.
        if device.is_relative_to(virtual):
            continue
        # A USB dongle or dock comes and goes; it must not move the component.
        if device.is_relative_to(sys_dir) and any(
            _USB_BUS.fullmatch(part) for part in device.relative_to(sys_dir).parts
        ):
            continue
        try:
            if _read_text(entry / "addr_assign_type").strip() != _PERMANENT_ADDRESS:
                continue
        except FileNotFoundError:
            pass
        except (OSError, ValueError):
            continue
        try:
            found.append(_read_text(entry / "address"))
        except (OSError, ValueError):
            continue
    return join_macs(found)


def parse_cpuinfo(text: str) -> str | None:
    """The CPU model named by /proc/cpuinfo: its first processor's model, however spelled.

    x86 says `model name`; older ARM kernels `Hardware`; MIPS `cpu model`; PowerPC `cpu`;
    arm64 often names only the implementer and part numbers, which then stand in.
    """
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, colon, value = line.partition(":")
        if colon:
            fields.setdefault(key.strip().lower(), value.strip())
    for key in _CPU_KEYS:
        if fields.get(key):
            return fields[key]
    implementer, part = fields.get("cpu implementer"), fields.get("cpu part")
    if implementer and part:
        return f"implementer {implementer} part {part}"
    return None


def cpu_model(root: Path) -> str | None:
    """The CPU model from /proc/cpuinfo."""
    return parse_cpuinfo(_read_text(root / "proc/cpuinfo", limit=64 * 1024))


def parse_root_mount(mountinfo: str) -> tuple[str, str] | None:
    """The device number (`major:minor`) and source of the mount at `/`, from mountinfo.

    The last line mounted at `/` is the one on top. Fields (proc(5)): id, parent id,
    major:minor, root, mount point, options, optional fields..., `-`, type, source, ...
    """
    found: tuple[str, str] | None = None
    for line in mountinfo.splitlines():
        fields = line.split(" ")
        if len(fields) < 10 or "-" not in fields[6:]:
            continue
        separator = fields.index("-", 6)
        if fields[4] != "/" or len(fields) < separator + 3:
            continue
        source = _OCTAL_ESCAPE.sub(lambda m: chr(int(m.group(1), 8)), fields[separator + 2])
        found = (fields[2], source)
    return found


def _device_number(path: Path) -> str | None:
    """`major:minor` of a block device node, or None for anything else."""
    if sys.platform != "win32":
        try:
            info = path.stat()
        except OSError:
            return None
        if stat.S_ISBLK(info.st_mode):
            return f"{os.major(info.st_rdev)}:{os.minor(info.st_rdev)}"
    return None


def root_fs_uuid(root: Path) -> str | None:
    """The UUID of the filesystem mounted at `/`, from the /dev/disk/by-uuid links."""
    mount = parse_root_mount(_read_text(root / "proc/self/mountinfo", limit=1024 * 1024))
    if mount is None:
        return None
    number, source = mount
    # The source names the device (`/dev/vda1`, `/dev/mapper/x`); `/dev/root` and btrfs
    # subvolumes do not, so the device number is matched too.
    target = (root / source.lstrip("/")).resolve() if source.startswith("/dev/") else None
    for link in sorted((root / "dev/disk/by-uuid").iterdir()):
        device = link.resolve()
        if device == target or _device_number(device) == number:
            return link.name
    return None


def dmi(root: Path, name: str) -> str | None:
    """One SMBIOS value the kernel exposes in /sys/class/dmi/id (serials: root only)."""
    return _read_text(root / "sys/class/dmi/id" / name).strip()
