"""The hardware fingerprint: keyed digests on this machine, and each reader's parsing.

The Linux readers run against fake trees under `tmp_path` (no mock of the OS); the macOS
and Windows readers are tested through their parsers of the tools' output.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import plistlib
import re
from pathlib import Path
from types import ModuleType

import pytest

from gatehouse.client import _linux, _macos, _probe, _windows
from gatehouse.client.hardware import (
    COMPONENT_NAME,
    MAX_COMPONENTS,
    collect,
    combine,
    digest_component,
    from_raw,
)

HEX64 = re.compile(r"[0-9a-f]{64}")
APP = "com.example.test"
UUID = "0b6a4c1e-27d4-4f4e-9c2b-6d1f0e7a9c33"


# -- this machine ----------------------------------------------------------------------


def test_collect_finds_at_least_two_components_each_64_lowercase_hex() -> None:
    """On this machine `collect` reads two or more components, all digests 64 lowercase hex."""
    fp = collect(APP)
    assert len(fp.components) >= 2
    assert all(HEX64.fullmatch(value) for value in fp.components.values())
    assert HEX64.fullmatch(fp.fingerprint)


def test_collect_is_stable_across_calls() -> None:
    """Two calls on one machine give the same components and fingerprint."""
    assert collect(APP) == collect(APP)


def test_different_app_ids_share_no_digest() -> None:
    """Two applications see unrelated digests for every component and the fingerprint."""
    first, second = collect("com.vendor-one.app"), collect("com.vendor-two.app")
    assert first.components.keys() == second.components.keys()
    assert all(first.components[name] != second.components[name] for name in first.components)
    assert first.fingerprint != second.fingerprint


def test_raw_machine_id_never_appears_in_the_fingerprint() -> None:
    """The raw machine id of this machine is not in what `collect` returns."""
    raw = Path("/etc/machine-id").read_text().strip()
    assert raw not in repr(collect(APP))


def test_collect_names_obey_the_wire_rules() -> None:
    """Every name `collect` returns is 1-64 of [a-z0-9_.-], and there are at most 32."""
    names = collect(APP).components.keys()
    assert len(names) <= MAX_COMPONENTS
    assert all(COMPONENT_NAME.fullmatch(name) for name in names)


@pytest.mark.parametrize("module", [_linux, _macos, _windows], ids=["linux", "macos", "windows"])
def test_every_platform_names_components_by_the_wire_rules(module: ModuleType) -> None:
    """Each platform's component names are valid, unique and at most 32."""
    names: tuple[str, ...] = module.NAMES
    assert len(set(names)) == len(names) <= MAX_COMPONENTS
    assert all(COMPONENT_NAME.fullmatch(name) for name in names)


def test_empty_app_id_is_refused() -> None:
    """An empty app_id raises ValueError: it is the key of every digest."""
    with pytest.raises(ValueError, match="app_id"):
        collect("")


# -- the definition ----------------------------------------------------------------------


def test_component_is_hmac_of_name_nul_raw_keyed_by_app_id() -> None:
    """A component is HMAC-SHA256(app_id, name + NUL + raw), as docs/fingerprints.md says."""
    expected = hmac.new(APP.encode(), b"cpu\0amd epyc", hashlib.sha256).hexdigest()
    assert digest_component(APP, "cpu", "amd epyc") == expected


def test_fingerprint_is_hmac_of_sorted_name_digest_lines() -> None:
    """The fingerprint is HMAC-SHA256(app_id, sorted `name=digest` lines, each ending LF)."""
    fp = from_raw(APP, {"mac": "02:fc:00:00:00:01", "cpu": "amd epyc"})
    lines = f"cpu={fp.components['cpu']}\nmac={fp.components['mac']}\n"
    expected = hmac.new(APP.encode(), lines.encode(), hashlib.sha256).hexdigest()
    assert fp.fingerprint == expected == combine(APP, fp.components)


def test_collect_fingerprint_is_the_combination_of_its_components() -> None:
    """`collect`'s fingerprint is `combine` of the components it returns."""
    fp = collect(APP)
    assert fp.fingerprint == combine(APP, fp.components)


def test_fingerprint_changes_when_one_component_changes() -> None:
    """Changing one raw value changes that component only, and the fingerprint."""
    raw = {"machine_id": "a" * 31 + "b", "cpu": "amd epyc", "mac": "02:fc:00:00:00:01"}
    before = from_raw(APP, raw)
    after = from_raw(APP, {**raw, "cpu": "intel xeon"})
    changed = {n for n in before.components if before.components[n] != after.components[n]}
    assert changed == {"cpu"}
    assert before.fingerprint != after.fingerprint


@pytest.mark.parametrize("name", ["CPU", "", "a b", "x" * 65, "mac/0"])
def test_component_names_outside_the_wire_rules_are_refused(name: str) -> None:
    """A name the server would refuse raises ValueError before anything is sent."""
    with pytest.raises(ValueError, match="component name"):
        from_raw(APP, {name: "value"})


def test_more_than_32_components_are_refused() -> None:
    """33 components raise ValueError: the server accepts at most 32."""
    with pytest.raises(ValueError, match="at most 32"):
        from_raw(APP, {f"c{i}": "value" for i in range(33)})


# -- Linux readers on a fake root --------------------------------------------------------


def write(root: Path, relative: str, text: str) -> Path:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def add_interface(
    root: Path, name: str, device_dir: str, mac: str, assign_type: str | None = "0"
) -> None:
    """An interface as sysfs shows it: /sys/class/net/NAME -> ../../devices/.../net/NAME."""
    device = root / "sys" / device_dir / "net" / name
    write(device.parent.parent, f"net/{name}/address", mac + "\n")
    if assign_type is not None:
        write(device.parent.parent, f"net/{name}/addr_assign_type", assign_type + "\n")
    link = root / "sys/class/net" / name
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(os.path.relpath(device, link.parent))


def test_machine_id_is_read_from_etc(tmp_path: Path) -> None:
    """/etc/machine-id gives the machine id."""
    write(tmp_path, "etc/machine-id", "3d1219c7c4c5404aaa1f6d2a48adfda4\n")
    assert _linux.machine_id(tmp_path) == "3d1219c7c4c5404aaa1f6d2a48adfda4"


def test_machine_id_falls_back_to_dbus(tmp_path: Path) -> None:
    """Without /etc/machine-id, D-Bus's copy is used."""
    write(tmp_path, "var/lib/dbus/machine-id", "0123456789abcdef0123456789abcdef\n")
    assert _linux.machine_id(tmp_path) == "0123456789abcdef0123456789abcdef"


def test_uninitialized_machine_id_is_no_component(tmp_path: Path) -> None:
    """A first-boot "uninitialized" machine id yields no component."""
    write(tmp_path, "etc/machine-id", "uninitialized\n")
    assert "machine_id" not in _linux.read(tmp_path)


def test_mac_keeps_only_permanent_physical_non_usb_addresses(tmp_path: Path) -> None:
    """lo, virtual, USB, random-address and all-zero interfaces are skipped; the rest kept."""
    pci = "devices/pci0000:00/0000:00:03.0/virtio2"
    add_interface(tmp_path, "eth0", pci, "02:FC:00:00:00:01")
    add_interface(tmp_path, "lo", "devices/virtual", "00:00:00:00:00:00")
    add_interface(tmp_path, "ifb0", "devices/virtual", "ae:3e:1a:e9:7f:c2", assign_type="1")
    add_interface(tmp_path, "wg0", "devices/virtual", "5a:11:22:33:44:55")
    usb = "devices/pci0000:00/0000:00:14.0/usb1/1-1/1-1:1.0"
    add_interface(tmp_path, "enx0", usb, "00:e0:4c:68:00:01")
    add_interface(tmp_path, "wlan0", "devices/pci0000:00/0000:00:1c.0", "3a:00:00:00:00:09", "3")
    add_interface(tmp_path, "eth9", "devices/pci0000:00/0000:00:1d.0", "00:00:00:00:00:00")
    assert _linux.mac_addresses(tmp_path) == "02:fc:00:00:00:01"


def test_mac_is_one_sorted_component_for_all_physical_interfaces(tmp_path: Path) -> None:
    """Two physical NICs make one `mac` value: both addresses, sorted, comma-separated."""
    add_interface(tmp_path, "eth1", "devices/pci0000:00/0000:00:04.0", "b0:00:00:00:00:02")
    add_interface(tmp_path, "eth0", "devices/pci0000:00/0000:00:03.0", "a0:00:00:00:00:01", None)
    assert _linux.mac_addresses(tmp_path) == "a0:00:00:00:00:01,b0:00:00:00:00:02"


def test_only_virtual_interfaces_give_no_mac_component(tmp_path: Path) -> None:
    """A machine with only virtual interfaces has no `mac` component."""
    add_interface(tmp_path, "lo", "devices/virtual", "00:00:00:00:00:00")
    add_interface(tmp_path, "br0", "devices/virtual", "02:42:ac:11:00:02")
    assert "mac" not in _linux.read(tmp_path)


X86_CPUINFO = """processor\t: 0
vendor_id\t: AuthenticAMD
cpu family\t: 25
model\t\t: 17
model name\t: AMD EPYC 7B13 64-Core Processor
cpu MHz\t\t: 2596.130

processor\t: 1
model name\t: AMD EPYC 7B13 64-Core Processor
"""
ARM_CPUINFO = """processor\t: 0
BogoMIPS\t: 108.00
CPU implementer\t: 0x41
CPU part\t: 0xd08

Hardware\t: BCM2835
Model\t\t: Raspberry Pi 4 Model B Rev 1.4
"""
ARM64_CPUINFO = """processor\t: 0
BogoMIPS\t: 50.00
CPU implementer\t: 0x41
CPU architecture: 8
CPU part\t: 0xd0c
"""


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (X86_CPUINFO, "AMD EPYC 7B13 64-Core Processor"),
        (ARM_CPUINFO, "BCM2835"),
        (ARM64_CPUINFO, "implementer 0x41 part 0xd0c"),
        ("processor\t: 0\nflags\t: fpu\n", None),
    ],
    ids=["x86-model-name", "arm-hardware", "arm64-part", "nothing"],
)
def test_cpuinfo_names_the_first_processors_model(text: str, expected: str | None) -> None:
    """The CPU model comes from `model name`, else `Hardware`, else implementer and part."""
    assert _linux.parse_cpuinfo(text) == expected


def test_cpu_component_is_read_from_proc(tmp_path: Path) -> None:
    """/proc/cpuinfo under the root gives the (normalised) `cpu` component."""
    write(tmp_path, "proc/cpuinfo", X86_CPUINFO)
    assert _linux.read(tmp_path)["cpu"] == "amd epyc 7b13 64-core processor"


MOUNTINFO = """22 27 0:21 / /proc rw,relatime - proc proc rw
27 1 254:1 / / rw,relatime shared:1 master:2 - ext4 /dev/vda1 rw,discard
31 27 0:30 / /mnt/my\\040disk rw - ext4 /dev/vdb rw
"""


def test_mountinfo_gives_the_root_mounts_device_and_source() -> None:
    """The `/` line's major:minor and source are found past the optional fields."""
    assert _linux.parse_root_mount(MOUNTINFO) == ("254:1", "/dev/vda1")


def test_mountinfo_takes_the_topmost_root_mount_and_unescapes() -> None:
    """With two mounts at `/`, the later (on top) wins; `\\040` in the source is a space."""
    text = MOUNTINFO + "40 27 0:40 / / rw - xfs /dev/disk\\040two rw\n"
    assert _linux.parse_root_mount(text) == ("0:40", "/dev/disk two")


def test_mountinfo_without_a_root_mount_gives_nothing() -> None:
    """Mountinfo with no mount at `/` (or garbage) yields None."""
    assert _linux.parse_root_mount("22 27 0:21 / /proc rw - proc proc rw\nnonsense\n") is None


def test_root_fs_uuid_matches_the_by_uuid_link_of_the_root_device(tmp_path: Path) -> None:
    """The by-uuid link that resolves to the device mounted at `/` names the UUID."""
    write(tmp_path, "proc/self/mountinfo", MOUNTINFO)
    write(tmp_path, "dev/vda1", "")
    write(tmp_path, "dev/vdb", "")
    by_uuid = tmp_path / "dev/disk/by-uuid"
    by_uuid.mkdir(parents=True)
    (by_uuid / "1111-2222").symlink_to("../../vdb")
    (by_uuid / UUID).symlink_to("../../vda1")
    assert _linux.root_fs_uuid(tmp_path) == UUID


def test_root_fs_uuid_follows_a_mapper_link(tmp_path: Path) -> None:
    """A root on /dev/mapper/root (a link to dm-0) matches the by-uuid link to dm-0."""
    write(tmp_path, "proc/self/mountinfo", "27 1 253:0 / / rw - ext4 /dev/mapper/root rw\n")
    write(tmp_path, "dev/dm-0", "")
    (tmp_path / "dev/mapper").mkdir()
    (tmp_path / "dev/mapper/root").symlink_to("../dm-0")
    (tmp_path / "dev/disk/by-uuid").mkdir(parents=True)
    (tmp_path / "dev/disk/by-uuid" / UUID).symlink_to("../../dm-0")
    assert _linux.root_fs_uuid(tmp_path) == UUID


def test_root_fs_is_skipped_without_by_uuid_links(tmp_path: Path) -> None:
    """No /dev/disk/by-uuid (as in this VM) means no `root_fs` component, no failure."""
    write(tmp_path, "proc/self/mountinfo", MOUNTINFO)
    write(tmp_path, "etc/machine-id", "3d1219c7c4c5404aaa1f6d2a48adfda4\n")
    assert set(_linux.read(tmp_path)) == {"machine_id"}


def test_dmi_ids_are_read_and_placeholders_dropped(tmp_path: Path) -> None:
    """Readable DMI ids become components; a vendor placeholder serial does not."""
    write(tmp_path, "sys/class/dmi/id/product_uuid", UUID.upper() + "\n")
    write(tmp_path, "sys/class/dmi/id/product_serial", "To Be Filled By O.E.M.\n")
    write(tmp_path, "sys/class/dmi/id/board_serial", "  PF2ABCDE \n")
    found = _linux.read(tmp_path)
    assert found["product_uuid"] == UUID
    assert found["board_serial"] == "pf2abcde"
    assert "product_serial" not in found


def test_unreadable_dmi_ids_are_skipped(tmp_path: Path) -> None:
    """A DMI id that cannot be read (an OSError, as PermissionError is) is left out."""
    # The tests run as root, which mode 0400 would not stop; a directory fails open() too.
    (tmp_path / "sys/class/dmi/id/board_serial").mkdir(parents=True)
    write(tmp_path, "sys/class/dmi/id/product_uuid", UUID)
    found = _linux.read(tmp_path)
    assert "board_serial" not in found
    assert found["product_uuid"] == UUID


def test_a_full_fake_machine_yields_every_linux_component(tmp_path: Path) -> None:
    """A tree with every source readable yields exactly the components in NAMES."""
    write(tmp_path, "etc/machine-id", "3d1219c7c4c5404aaa1f6d2a48adfda4\n")
    add_interface(tmp_path, "eth0", "devices/pci0000:00/0000:00:03.0", "02:fc:00:00:00:01")
    write(tmp_path, "proc/cpuinfo", X86_CPUINFO)
    write(tmp_path, "proc/self/mountinfo", MOUNTINFO)
    write(tmp_path, "dev/vda1", "")
    (tmp_path / "dev/disk/by-uuid").mkdir(parents=True)
    (tmp_path / "dev/disk/by-uuid" / UUID).symlink_to("../../vda1")
    for name, value in [("product_uuid", UUID), ("product_serial", "S1"), ("board_serial", "B1")]:
        write(tmp_path, f"sys/class/dmi/id/{name}", value)
    assert set(_linux.read(tmp_path)) == set(_linux.NAMES)


def test_an_empty_root_yields_no_component_and_no_error(tmp_path: Path) -> None:
    """With nothing readable every reader is skipped: an empty result, not an exception."""
    assert _linux.read(tmp_path) == {}


# -- macOS and Windows parsers, shared helpers -----------------------------------------


def test_ioreg_plist_gives_platform_uuid_and_serial() -> None:
    """`ioreg -a` output yields IOPlatformUUID and IOPlatformSerialNumber."""
    entry = {"IOPlatformUUID": UUID.upper(), "IOPlatformSerialNumber": "C02XK0AAJG5H", "x": 1}
    text = plistlib.dumps([entry]).decode()
    assert _macos.parse_platform_expert(text) == {
        "product_uuid": UUID.upper(),
        "product_serial": "C02XK0AAJG5H",
    }


@pytest.mark.parametrize("text", [None, "", "not a plist", "<plist><dict>", "<plist/>"])
def test_ioreg_output_that_does_not_parse_gives_nothing(text: str | None) -> None:
    """Missing or broken `ioreg` output yields no values rather than an error."""
    assert _macos.parse_platform_expert(text) == {}


def test_diskutil_plist_gives_the_volume_uuid() -> None:
    """`diskutil info -plist` output yields its VolumeUUID."""
    text = plistlib.dumps({"VolumeUUID": UUID, "VolumeName": "Data"}).decode()
    assert _macos.parse_volume_uuid(text) == UUID
    assert _macos.parse_volume_uuid("garbage") is None


def test_cim_lines_are_grouped_by_name() -> None:
    """The PowerShell script's `name=value` lines parse, MACs kept as a list."""
    text = (
        "product_uuid=4C4C4544-0042\r\nboard_serial=\r\n"
        "mac=00:1A:2B:3C:4D:5E\r\nmac=00-1a-2b-3c-4d-5f\r\n"
    )
    assert _windows.parse_cim(text) == {
        "product_uuid": ["4C4C4544-0042"],
        "mac": ["00:1A:2B:3C:4D:5E", "00-1a-2b-3c-4d-5f"],
    }


def test_macs_are_normalised_deduplicated_and_sorted() -> None:
    """MACs in either notation become lowercase colon form, once each, sorted."""
    joined = _probe.join_macs(["00-1A-2B-3C-4D-5F", "00:1a:2b:3c:4d:5e", "00:1A:2B:3C:4D:5F"])
    assert joined == "00:1a:2b:3c:4d:5e,00:1a:2b:3c:4d:5f"


@pytest.mark.parametrize(
    "text", ["00:00:00:00:00:00", "ff:ff:ff:ff:ff:ff", "01:00:5e:00:00:01", "no mac", "00:11:22"]
)
def test_group_zero_and_malformed_macs_are_refused(text: str) -> None:
    """All-zero, broadcast, multicast and malformed addresses name no adapter."""
    assert _probe.normal_mac(text) is None


@pytest.mark.parametrize(
    "value",
    [
        "",
        "  ",
        "Default string",
        "To Be Filled By O.E.M.",
        "00000000-0000-0000-0000-000000000000",
        "FFFFFFFF-FFFF-FFFF-FFFF-FFFFFFFFFFFF",
        "03000200-0400-0500-0006-000700080009",
        "0",
    ],
)
def test_placeholder_values_are_no_identity(value: str) -> None:
    """Empty, vendor placeholder and single-digit-repeated values are dropped."""
    assert _probe.clean(value) is None


def test_tool_output_is_returned_on_success() -> None:
    """A tool that exits 0 gives its standard output."""
    assert _probe.run(["/bin/echo", "hello"]) == "hello\n"


@pytest.mark.parametrize(
    "argv",
    [["/bin/false"], ["/nonexistent/tool"], ["/bin/sleep", "5"]],
    ids=["exit-1", "missing", "timeout"],
)
def test_a_failing_missing_or_slow_tool_gives_none(argv: list[str]) -> None:
    """A non-zero exit, a missing tool and a timeout all give None, never an exception."""
    assert _probe.run(argv, timeout=0.2) is None
