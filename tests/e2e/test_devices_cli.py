"""`gatehouse devices` and `gatehouse licenses`: the real console script on a real database
(SQLite, and PostgreSQL for imports), checked through a running server where it matters."""

from __future__ import annotations

import hashlib
import re
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.harness import PASSWORD, Deployment, assert_clean_failure, bearer, login

SECRET = "devices-cli-e2e-secret-" + "d" * 40
UUID_LINE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
# More devices than one page of `devices list` (1000), so the listing must follow pages.
MANY_DEVICES = 1205


def machine(n: int | str) -> str:
    """A hardware hash: 64 lowercase hex."""
    return hashlib.sha256(f"machine {n}".encode()).hexdigest()


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, (result.returncode, result.stdout, result.stderr)
    return result.stdout


def one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    """The command failed cleanly (exit 1) with exactly one line on stderr; that line."""
    assert_clean_failure(result, 1)
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def create_user(deployment: Deployment, username: str, *, admin: bool = False) -> None:
    args = ["users", "create", username, "--password-stdin", *(["--admin"] if admin else [])]
    ok(deployment.cli(*args, stdin=PASSWORD + "\n"))


def create_license(deployment: Deployment, *args: str) -> tuple[str, str]:
    """`licenses create ARGS`: the license id and its key."""
    id_line, key_line = ok(deployment.cli("licenses", "create", *args)).splitlines()
    assert UUID_LINE.fullmatch(id_line), id_line
    assert key_line.startswith("license key: ghl_"), key_line
    return id_line, key_line.removeprefix("license key: ")


def device_lines(deployment: Deployment, *args: str) -> list[str]:
    return ok(deployment.cli("devices", "list", *args)).splitlines()


def write_csv(path: Path, *lines: str) -> str:
    path.write_text("".join(line + "\n" for line in lines))
    return str(path)


def verify(client: httpx.Client, hardware_hash: str) -> httpx.Response:
    return client.post("/devices/verify", json={"hardware_hash": hardware_hash})


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, deployment: Deployment) -> Deployment:
    """The deployment on the embedded SQLite file, or on a fresh PostgreSQL database."""
    if request.param == "postgresql":
        url: str = request.getfixturevalue("postgres_url")
        deployment.env.update(GATEHOUSE_DATABASE_URL=url, GATEHOUSE_SECRET_KEY=SECRET)
        ok(deployment.cli("db", "upgrade"))
    return deployment


def test_add_lists_the_device_and_the_server_verifies_its_hash(deployment: Deployment) -> None:
    """`devices add HASH --label L --owner alice` prints only the new id; `devices list` shows
    `id<TAB>label<TAB>active`; the running server's POST /devices/verify accepts the hash (and
    answers 401 unknown_device for another). A bad hash, an unknown owner, a malformed license
    id and a hash registered already each fail with one line and exit 1, adding nothing."""
    with deployment.serve() as server, server.client() as client:
        create_user(deployment, "alice")
        added = ok(
            deployment.cli("devices", "add", machine(1), "--label", "lab pc", "--owner", "alice")
        )
        device_id = added.strip()
        assert added == device_id + "\n"
        assert UUID_LINE.fullmatch(device_id), added

        assert device_lines(deployment) == [f"{device_id}\tlab pc\tactive"]
        verified = verify(client, machine(1))
        assert verified.status_code == 200, verified.text
        assert verified.json()["device_id"] == device_id
        unknown = verify(client, machine(2))
        assert unknown.status_code == 401, unknown.text
        assert unknown.json()["code"] == "unknown_device"

        names = ("hex", "user", "uuid", "again")
        results = deployment.cli_concurrently(
            ("devices", "add", machine(2).upper(), "--label", "x"),
            ("devices", "add", machine(2), "--label", "x", "--owner", "zed"),
            ("devices", "add", machine(2), "--label", "x", "--license", "7"),
            ("devices", "add", machine(1), "--label", "twice"),
        )
        refusals = dict(zip(names, results, strict=True))
        lines = {name: one_error_line(result) for name, result in refusals.items()}
        assert "64 lowercase hex" in lines["hex"]
        assert lines["user"] == "error: no such user 'zed'"
        assert "license id" in lines["uuid"]
        assert "registered already" in lines["again"]
        assert device_lines(deployment) == [f"{device_id}\tlab pc\tactive"]


def test_import_of_a_good_csv_with_owner_and_license_columns_imports_every_row(
    store: Deployment, tmp_path: Path
) -> None:
    """A CSV with `hardware_hash,label,owner,license` (cells left empty, a quoted label with a
    comma) imports every row: `imported 4 devices`; the admin API shows each row's owner and
    license; `licenses list` counts the seats; each hash verifies."""
    create_user(store, "bob")
    create_user(store, "root", admin=True)
    license_id, _ = create_license(store, "--product", "Acme", "--max-devices", "2")
    rows = {
        machine(1): ("one", "bob", license_id),
        machine(2): ("two, with a comma", "bob", ""),
        machine(3): ("three", "", license_id),
        machine(4): ("four", "", ""),
    }
    lines = ["hardware_hash,label,owner,license"]
    lines += [f'{h},"{label}",{owner},{lic}' for h, (label, owner, lic) in rows.items()]
    csv_file = write_csv(tmp_path / "devices.csv", *lines)

    imported = ok(store.cli("devices", "import", csv_file))
    assert imported == "imported 4 devices\n"

    assert sorted(line.split("\t")[1] for line in device_lines(store)) == sorted(
        label for label, _, _ in rows.values()
    )
    licenses = ok(store.cli("licenses", "list")).splitlines()
    assert licenses == [f"{license_id}\tAcme\t2/2\tactive"]
    with store.serve() as server, server.client() as client:
        token = login(client, "root")
        bob = client.get("/admin/users", headers=bearer(token), params={"prefix": "bob"})
        assert bob.status_code == 200, bob.text
        bob_id = bob.json()["items"][0]["id"]
        listed = client.get("/admin/devices", headers=bearer(token), params={"limit": 10})
        assert listed.status_code == 200, listed.text
        stored = {d["label"]: (d["owner_id"], d["license_id"]) for d in listed.json()["items"]}
        expected: dict[str, tuple[Any, Any]] = {
            label: (bob_id if owner else None, lic or None) for label, owner, lic in rows.values()
        }
        assert stored == expected
        for hardware_hash in rows:
            assert verify(client, hardware_hash).status_code == 200


def _rows(fourth: str, *, header: str = "hardware_hash,label,owner") -> list[str]:
    """A 5-line CSV: the header, two good rows, `fourth` on line 4, one more good row."""
    empty = "," * (header.count(",") - 1)
    good = [f"{machine(n)},row {n}{empty}" for n in (1, 2, 5)]
    return [header, good[0], good[1], fourth, good[2]]


NO_LICENSE = uuid.UUID(int=7)


@pytest.mark.parametrize(
    ("lines", "bad_line", "reason"),
    [
        (_rows("not-a-hash,c,"), 4, "the hardware hash must be 64 lowercase hex characters"),
        (_rows(f"{machine(4).upper()},c,"), 4, "the hardware hash must be 64 lowercase hex"),
        (_rows(f"{machine(4)},,"), 4, "the label must be 1-100 characters"),
        (_rows(f"{machine(4)},c,nobody"), 4, "no such user 'nobody'"),
        (_rows(f"{machine(4)},c,,x"), 4, "more fields than the header has"),
        (_rows(f"{machine(4)},c"), 4, "fewer fields than the header has"),
        (_rows(f"{machine(4)},c,7", header="hardware_hash,label,license"), 4, "license id"),
        (
            _rows(f"{machine(4)},c,{NO_LICENSE}", header="hardware_hash,label,license"),
            4,
            f"no such license {NO_LICENSE}",
        ),
        (_rows(f"{machine(4)},c,red", header="hardware_hash,label,colour"), 1, "'colour'"),
        (_rows(f"{machine(4)},c", header="hardware_hash,owner"), 1, "missing column label"),
    ],
    ids=[
        "bad hash",
        "uppercase hash",
        "empty label",
        "unknown owner",
        "a field too many",
        "a field too few",
        "malformed license id",
        "unknown license",
        "unknown column",
        "missing column",
    ],
)
def test_a_bad_row_names_its_line_and_imports_nothing(
    deployment: Deployment, tmp_path: Path, lines: list[str], bad_line: int, reason: str
) -> None:
    """A bad row on line 4 of a 5-line CSV (or a bad header, line 1) fails with one line that
    names the line and the reason, and nothing is imported: `devices list` stays empty. (These
    rows are refused before anything is written, so SQLite alone shows it.)"""
    result = deployment.cli("devices", "import", write_csv(tmp_path / "bad.csv", *lines))
    error = one_error_line(result)
    assert error.startswith(f"error: Line {bad_line}: "), error
    assert reason in error, error
    assert error.endswith("Nothing was imported."), error
    assert device_lines(deployment) == []


def test_a_hash_twice_in_the_file_names_the_second_line_and_imports_nothing(
    store: Deployment, tmp_path: Path
) -> None:
    """The same hash on lines 2 and 4: the error names line 4 (and line 2); nothing imported."""
    csv_file = write_csv(
        tmp_path / "twice.csv",
        "hardware_hash,label",
        f"{machine(1)},a",
        f"{machine(2)},b",
        f"{machine(1)},a again",
        f"{machine(3)},c",
    )
    error = one_error_line(store.cli("devices", "import", csv_file))
    assert error.startswith("error: Line 4: "), error
    assert "line 2" in error, error
    assert device_lines(store) == []


def test_a_hash_registered_already_names_its_line_and_imports_nothing(
    store: Deployment, tmp_path: Path
) -> None:
    """A row whose hash `devices add` registered before: the error names its line (3) and the
    import stores none of its rows; the earlier device is still the only one."""
    device_id = ok(store.cli("devices", "add", machine(2), "--label", "first")).strip()
    csv_file = write_csv(
        tmp_path / "again.csv",
        "hardware_hash,label",
        f"{machine(1)},a",
        f"{machine(2)},b",
        f"{machine(3)},c",
    )
    error = one_error_line(store.cli("devices", "import", csv_file))
    assert error.startswith("error: Line 3: "), error
    assert "registered already" in error, error
    assert device_lines(store) == [f"{device_id}\tfirst\tactive"]


def test_revoke_then_verify_answers_403_device_revoked(deployment: Deployment) -> None:
    """`devices revoke ID` prints `revoked device ID`; the running server's verify of that hash
    then answers 403 device_revoked (within the revocation poll interval); `list --status
    revoked` shows it. An unknown or malformed id fails with one line, exit 1."""
    with deployment.serve() as server, server.client() as client:
        device_id = ok(deployment.cli("devices", "add", machine(1), "--label", "pc")).strip()
        assert verify(client, machine(1)).status_code == 200

        revoked = ok(deployment.cli("devices", "revoke", device_id))
        assert revoked == f"revoked device {device_id}\n"
        deadline = time.monotonic() + 3
        answer = verify(client, machine(1))
        while answer.status_code == 200 and time.monotonic() < deadline:
            time.sleep(0.05)
            answer = verify(client, machine(1))
        assert answer.status_code == 403, answer.text
        assert answer.json()["code"] == "device_revoked"

        assert device_lines(deployment, "--status", "revoked") == [f"{device_id}\tpc\trevoked"]
        assert device_lines(deployment, "--status", "active") == []
        for unknown in (str(uuid.uuid4()), "not-an-id"):
            assert one_error_line(deployment.cli("devices", "revoke", unknown)) == (
                "error: No such device."
            )


def test_list_prints_every_device_uncut_through_a_pipe(
    deployment: Deployment, tmp_path: Path
) -> None:
    """With stdout a pipe and COLUMNS=40, `devices list` prints one whole line per device,
    labels of the longest allowed length (100 characters, with spaces) included, and follows
    every page (more devices than one page)."""
    labels = {machine(n): f"machine {n:05d} " + "x" * 86 for n in range(MANY_DEVICES)}
    lines = ["hardware_hash,label", *(f"{h},{label}" for h, label in labels.items())]
    csv_file = write_csv(tmp_path / "many.csv", *lines)
    assert ok(deployment.cli("devices", "import", csv_file)) == f"imported {MANY_DEVICES} devices\n"

    printed = ok(deployment.cli("devices", "list", env={"COLUMNS": "40"})).splitlines()
    assert len(printed) == MANY_DEVICES
    fields = [line.split("\t") for line in printed]
    assert all(len(f) == 3 and UUID_LINE.fullmatch(f[0]) and f[2] == "active" for f in fields)
    assert sorted(f[1] for f in fields) == sorted(labels.values())
    assert all(len(f[1]) == 100 for f in fields)
    assert len({f[0] for f in fields}) == MANY_DEVICES


def test_cull_frees_the_seats_of_devices_silent_past_cull_after(deployment: Deployment) -> None:
    """A device on a license with `--cull-after 1`, silent for longer, loses its seat on
    `devices cull` (`culled 1 device`); a device on a license without cull_after keeps its
    seat; a second cull finds nothing (`culled 0 devices`)."""
    culling, _ = create_license(
        deployment, "--product", "Short", "--max-devices", "2", "--cull-after", "1"
    )
    keeping, _ = create_license(deployment, "--product", "Long", "--max-devices", "2")
    silent = ok(deployment.cli("devices", "add", machine(1), "--label", "a", "--license", culling))
    registered_at = time.monotonic()
    kept = ok(deployment.cli("devices", "add", machine(2), "--label", "b", "--license", keeping))
    assert ok(deployment.cli("licenses", "list")).splitlines() == [
        f"{culling}\tShort\t1/2\tactive",
        f"{keeping}\tLong\t1/2\tactive",
    ]
    # Past the one second of cull_after since the device was registered (and so last seen).
    time.sleep(max(0.0, registered_at + 1.5 - time.monotonic()))

    assert ok(deployment.cli("devices", "cull")) == "culled 1 device\n"
    assert device_lines(deployment, "--license", culling) == []
    assert device_lines(deployment, "--license", keeping) == [f"{kept.strip()}\tb\tactive"]
    # A registered device only loses its seat: it stays in the registry, unbound.
    assert f"{silent.strip()}\ta\tactive" in device_lines(deployment)
    assert ok(deployment.cli("licenses", "list")).splitlines() == [
        f"{culling}\tShort\t0/2\tactive",
        f"{keeping}\tLong\t1/2\tactive",
    ]
    assert ok(deployment.cli("devices", "cull")) == "culled 0 devices\n"


def test_licenses_create_prints_a_key_that_activates_a_device(deployment: Deployment) -> None:
    """`licenses create` prints the license id, then `license key: ghl_...` (and on stderr that
    it is not shown again); POST /devices/activate with that key binds a machine (the answer
    names the license and its feature); the second machine of a 1-seat license gets 403
    license_full; `licenses list` shows 1/1 and never the key."""
    with deployment.serve() as server, server.client() as client:
        created = deployment.cli(
            "licenses",
            "create",
            "--product",
            "Acme Pro",
            "--max-devices",
            "1",
            "--feature",
            "export",
        )
        id_line, key_line = ok(created).splitlines()
        assert UUID_LINE.fullmatch(id_line), created.stdout
        key = key_line.removeprefix("license key: ")
        assert key_line.startswith("license key: ghl_"), key_line
        assert len(key) > 20, key_line
        assert "not shown again" in created.stderr

        activated = client.post(
            "/devices/activate",
            json={"license_key": key, "hardware_hash": machine(1), "label": "laptop"},
        )
        assert activated.status_code == 200, activated.text
        assert activated.json()["license"]["id"] == id_line
        assert activated.json()["license"]["features"] == ["export"]
        full = client.post(
            "/devices/activate", json={"license_key": key, "hardware_hash": machine(2)}
        )
        assert full.status_code == 403, full.text
        assert full.json()["code"] == "license_full"

        listed = ok(deployment.cli("licenses", "list"))
        assert listed == f"{id_line}\tAcme Pro\t1/1\tactive\n"
        assert key not in listed
        device_id = activated.json()["device_id"]
        assert device_lines(deployment, "--license", id_line) == [f"{device_id}\tlaptop\tactive"]


def test_licenses_create_refuses_bad_options_with_one_line(deployment: Deployment) -> None:
    """No seats, too many seats, a zero duration, an expiry without offset, an unknown owner:
    each exits 1 with one line on stderr, and no license is created."""
    ok(deployment.cli("licenses", "list"))  # creates the SQLite database before the runs below
    base = ("licenses", "create", "--product", "Acme")
    results = deployment.cli_concurrently(
        (*base, "--max-devices", "0"),
        (*base, "--max-devices", "1000001"),
        (*base, "--max-devices", "1", "--cull-after", "0"),
        (*base, "--max-devices", "1", "--expires-at", "2030-01-01T00:00:00"),
        (*base, "--max-devices", "1", "--owner", "nobody"),
    )
    errors = [one_error_line(result) for result in results]
    assert "--max-devices" in errors[0]
    assert "--max-devices" in errors[1]
    assert "--cull-after" in errors[2]
    assert "--expires-at" in errors[3]
    assert errors[4] == "error: no such user 'nobody'"
    assert ok(deployment.cli("licenses", "list")) == ""
