"""Hardware readers for Windows: the registry, one PowerShell CIM query, one Win32 call.

The machine GUID and the CPU name come from the registry (`winreg`); SMBIOS ids and the
physical adapters' MACs from a single `Get-CimInstance` run (one PowerShell start, not
four); the system volume's serial from `GetVolumeInformationW` (ctypes). Standard library
only; everything but `parse_cim` is reached only on Windows.
"""

from __future__ import annotations

import os
import sys

from gatehouse.client._probe import gather, join_macs, run

if sys.platform == "win32":
    import ctypes
    import winreg

NAMES = ("machine_id", "cpu", "product_uuid", "product_serial", "board_serial", "mac", "root_fs")

# PowerShell starts in about a second, and WMI may be cold.
_CIM_TIMEOUT = 8.0
# Only adapters on the PCI bus: USB dongles come and go, virtual switches and VPN adapters
# (ROOT\...) are software; `PhysicalAdapter` alone lets some of those through.
_CIM_SCRIPT = """
$ErrorActionPreference = 'SilentlyContinue'
"product_uuid=" + (Get-CimInstance Win32_ComputerSystemProduct).UUID
"product_serial=" + (Get-CimInstance Win32_BIOS).SerialNumber
"board_serial=" + ((Get-CimInstance Win32_BaseBoard).SerialNumber -join ' ')
Get-CimInstance Win32_NetworkAdapter -Filter 'PhysicalAdapter=TRUE' |
  Where-Object { $_.MACAddress -and $_.PNPDeviceID -like 'PCI\\*' } |
  ForEach-Object { "mac=" + $_.MACAddress }
"""


def parse_cim(text: str | None) -> dict[str, list[str]]:
    """The `name=value` lines the CIM script prints, grouped by name (MACs repeat)."""
    values: dict[str, list[str]] = {}
    for line in (text or "").splitlines():
        name, equals, value = line.strip().partition("=")
        if equals and value.strip():
            values.setdefault(name, []).append(value.strip())
    return values


def _first(values: list[str] | None) -> str | None:
    return values[0] if values else None


def _registry(path: str, value_name: str) -> str | None:
    if sys.platform == "win32":
        # The 64-bit view: a 32-bit Python would otherwise read a redirected copy.
        access = winreg.KEY_READ | winreg.KEY_WOW64_64KEY
        with winreg.OpenKey(winreg.HKEY_LOCAL_MACHINE, path, 0, access) as key:
            value, _kind = winreg.QueryValueEx(key, value_name)
        return value if isinstance(value, str) else None
    return None


def _system_volume_serial() -> str | None:
    if sys.platform == "win32":
        drive = os.environ.get("SYSTEMDRIVE", "C:") + "\\"
        serial = ctypes.c_uint32()
        ok = ctypes.windll.kernel32.GetVolumeInformationW(
            ctypes.c_wchar_p(drive), None, 0, ctypes.byref(serial), None, None, None, 0
        )
        return f"{serial.value:08x}" if ok else None
    return None


def _powershell() -> str:
    system_root = os.environ.get("SYSTEMROOT", r"C:\Windows")
    return os.path.join(system_root, "System32", "WindowsPowerShell", "v1.0", "powershell.exe")


def read() -> dict[str, str]:
    """Every component this Windows machine yields, as cleaned raw values."""
    command = [_powershell(), "-NoProfile", "-NonInteractive", "-Command", _CIM_SCRIPT]
    cim = parse_cim(run(command, timeout=_CIM_TIMEOUT))
    return gather(
        {
            "machine_id": lambda: _registry(r"SOFTWARE\Microsoft\Cryptography", "MachineGuid"),
            "cpu": lambda: _registry(
                r"HARDWARE\DESCRIPTION\System\CentralProcessor\0", "ProcessorNameString"
            ),
            "product_uuid": lambda: _first(cim.get("product_uuid")),
            "product_serial": lambda: _first(cim.get("product_serial")),
            "board_serial": lambda: _first(cim.get("board_serial")),
            "mac": lambda: join_macs(cim.get("mac", [])),
            "root_fs": _system_volume_serial,
        }
    )
