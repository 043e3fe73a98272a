"""`gatehouse devices` and `gatehouse licenses`: the machine registry and licenses, for the
operator at the server (no admin token needed).

Output is plain lines, tab-separated where there are columns, never cut or wrapped, so
scripts can read it. A bad input prints one line on stderr and exits 1; a bad row of an
import names its line (the physical line of the CSV file; the header is line 1) and
nothing is imported.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, TypeVar
from uuid import UUID

import typer

from gatehouse.server.audit.models import Actor
from gatehouse.server.cli.common import PAGE_SIZE, _every_page, _fail, _owner_id, _run, _user_id
from gatehouse.server.devices.models import (
    Device,
    DeviceFilter,
    DeviceStatus,
    NewDevice,
)
from gatehouse.server.devices.service import HEX64, check_label
from gatehouse.server.errors import (
    DeviceExistsError,
    GatehouseError,
    InvalidInputError,
    NotFoundError,
)
from gatehouse.server.wiring import Services

devices_app = typer.Typer(
    help="Machines allowed to run a licensed program, known by their hardware hash.",
    no_args_is_help=True,
)

# Items fetched per page by the listings (they follow every page).
_REQUIRED_COLUMNS = ("hardware_hash", "label")
_OPTIONAL_COLUMNS = ("owner", "license")
_COLUMNS_HELP = "hardware_hash,label and optionally owner,license"
_NOTHING_IMPORTED = "Nothing was imported."
# The limits of the HTTP API's license schema (http/device_schemas.py), kept alike here.
_MAX_SEATS = 1_000_000
_MAX_SECONDS = 10 * 365 * 86400
_MAX_COMPONENTS = 32
_MAX_FEATURES = 64
_FEATURE = re.compile(r"[^\x00-\x1f\x7f]{1,64}")

K = TypeVar("K")


# -- devices ---------------------------------------------------------------------------------


def _hash_problem(hardware_hash: str) -> str | None:
    if HEX64.fullmatch(hardware_hash) is None:
        return "the hardware hash must be 64 lowercase hex characters"
    return None


def _label_problem(label: str) -> str | None:
    try:
        check_label(label)
    except InvalidInputError:
        return "the label must be 1-100 characters without control characters"
    return None


def _license_id(text: str) -> UUID | None:
    try:
        return UUID(text)
    except ValueError:
        return None


@devices_app.command("add")
def devices_add(
    hardware_hash: Annotated[
        str, typer.Argument(metavar="HASH", help="The machine's fingerprint: 64 lowercase hex.")
    ],
    label: Annotated[str, typer.Option("--label", help="A name for the machine.")],
    owner: Annotated[str | None, typer.Option("--owner", help="The owner's username.")] = None,
    license_id: Annotated[
        str | None, typer.Option("--license", help="The id of a license to bind it to.")
    ] = None,
) -> None:
    """Register one machine by its hardware hash; print the new device's id."""
    problem = _hash_problem(hardware_hash) or _label_problem(label)
    if problem is not None:
        _fail(problem)
    bound = None
    if license_id is not None and (bound := _license_id(license_id)) is None:
        _fail("--license must be a license id (a UUID)")

    async def work(services: Services) -> Device:
        owner_id = await _owner_id(services, owner) if owner is not None else None
        new = NewDevice(fingerprint=hardware_hash, label=label, owner_id=owner_id, license_id=bound)
        try:
            return await services.devices.register(new, by=Actor.cli())
        except DeviceExistsError:
            _fail("a device with this hardware hash is registered already")

    typer.echo(str(_run(work).id))


@dataclass(frozen=True, slots=True)
class _Row:
    line: int
    hardware_hash: str
    label: str
    owner: str | None
    license_id: UUID | None


@dataclass(frozen=True, slots=True)
class _Parsed:
    """The rows read before the first bad one, and that one's line and reason (if any)."""

    rows: list[_Row]
    error: tuple[int, str] | None


def _header_problem(columns: list[str]) -> str | None:
    twice = sorted({name for name in columns if columns.count(name) > 1})
    if twice:
        return f"column {twice[0]!r} appears twice"
    unknown = [name for name in columns if name not in _REQUIRED_COLUMNS + _OPTIONAL_COLUMNS]
    if unknown:
        names = ", ".join(repr(name) for name in unknown)
        return f"unknown column {names}; the columns are {_COLUMNS_HELP}"
    missing = [name for name in _REQUIRED_COLUMNS if name not in columns]
    if missing:
        return f"missing column {', '.join(missing)}; the columns are {_COLUMNS_HELP}"
    return None


def _row(line: int, record: Mapping[str | None, str | list[str] | None]) -> _Row | str:
    """One data row, or why it is bad."""
    if None in record:  # csv.DictReader's key for the fields beyond the header's
        return "more fields than the header has"
    cells = {k: v for k, v in record.items() if isinstance(k, str) and isinstance(v, str)}
    if len(cells) < len(record):  # csv.DictReader's value for the fields missing
        return "fewer fields than the header has"
    hardware_hash = cells["hardware_hash"].strip()
    label = cells["label"]
    problem = _hash_problem(hardware_hash) or _label_problem(label)
    if problem is not None:
        return problem
    owner = cells.get("owner", "").strip() or None
    license_text = cells.get("license", "").strip()
    license_id = None
    if license_text and (license_id := _license_id(license_text)) is None:
        return "the license must be a license id (a UUID)"
    return _Row(line, hardware_hash, label, owner, license_id)


def _parse(reader: csv.DictReader[str]) -> _Parsed:
    """Read rows up to the first bad one (the header included)."""
    rows: list[_Row] = []
    try:
        header = reader.fieldnames
        if header is None:
            return _Parsed(
                rows, (1, f"the file is empty; line 1 must name the columns, {_COLUMNS_HELP}")
            )
        columns = [name.strip().lower() for name in header]
        reader.fieldnames = columns
        if (problem := _header_problem(columns)) is not None:
            return _Parsed(rows, (reader.line_num, problem))
        for record in reader:
            parsed = _row(reader.line_num, record)
            if isinstance(parsed, str):
                return _Parsed(rows, (reader.line_num, parsed))
            rows.append(parsed)
    except csv.Error as exc:
        return _Parsed(rows, (reader.line_num, f"not valid CSV ({exc})"))
    except UnicodeDecodeError:
        return _Parsed(rows, (reader.line_num + 1, "not UTF-8 text"))
    return _Parsed(rows, None)


def _read(file: Path) -> _Parsed:
    try:
        # utf-8-sig: spreadsheet programs often start a CSV file with a byte order mark.
        with file.open(newline="", encoding="utf-8-sig") as handle:
            return _parse(csv.DictReader(handle))
    except OSError as exc:
        _fail(f"cannot read {file}: {exc.strerror or exc}")


def _first_use(keys: Iterable[tuple[int, K | None]]) -> dict[K, int]:
    """Each distinct key with the line it first appears on."""
    first: dict[K, int] = {}
    for line, key in keys:
        if key is not None and key not in first:
            first[key] = line
    return first


async def _resolved(services: Services, parsed: _Parsed) -> list[tuple[int, NewDevice]]:
    """The rows as new devices, each distinct owner and license looked up once; fails on
    the first bad line (of reading, an unknown owner or an unknown license)."""
    problems = [parsed.error] if parsed.error is not None else []
    owners: dict[str, UUID] = {}
    for username, line in _first_use((r.line, r.owner) for r in parsed.rows).items():
        found = await _user_id(services, username)
        if found is None:
            problems.append((line, f"no such user {username!r}"))
        else:
            owners[username] = found
    for license_id, line in _first_use((r.line, r.license_id) for r in parsed.rows).items():
        try:
            await services.licenses.get(license_id)
        except NotFoundError:
            problems.append((line, f"no such license {license_id}"))
    if problems:
        line, reason = min(problems)
        _fail(f"Line {line}: {reason}. {_NOTHING_IMPORTED}")
    return [
        (
            row.line,
            NewDevice(
                fingerprint=row.hardware_hash,
                label=row.label,
                owner_id=owners[row.owner] if row.owner is not None else None,
                license_id=row.license_id,
            ),
        )
        for row in parsed.rows
    ]


@devices_app.command("import")
def devices_import(
    file: Annotated[
        Path,
        typer.Argument(
            metavar="FILE",
            help=f"A CSV file with a header row; columns {_COLUMNS_HELP} (a username; a "
            "license id).",
        ),
    ],
) -> None:
    """Register the machines of a CSV file: all of them, or none if a row is bad.

    One transaction; an error names the bad row's line (the header is line 1).
    """
    parsed = _read(file)

    async def work(services: Services) -> int:
        rows = await _resolved(services, parsed)
        try:
            stored = await services.devices.register_many(rows, by=Actor.cli())
        except GatehouseError as exc:  # one transaction: nothing was stored
            _fail(f"{exc.message} {_NOTHING_IMPORTED}")
        return len(stored)

    count = _run(work)
    typer.echo(f"imported {count} device{'' if count == 1 else 's'}")


@devices_app.command("list")
def devices_list(
    license_id: Annotated[
        str | None, typer.Option("--license", help="Only the devices bound to this license id.")
    ] = None,
    status: Annotated[
        DeviceStatus | None, typer.Option("--status", help="Only devices in this status.")
    ] = None,
) -> None:
    """List devices, oldest first: id, label, status (tab-separated)."""
    bound = None
    if license_id is not None and (bound := _license_id(license_id)) is None:
        _fail("--license must be a license id (a UUID)")
    where = DeviceFilter(license_id=bound, status=status)

    async def work(services: Services) -> list[Device]:
        pages = lambda cursor: services.devices.list_page(  # noqa: E731 - one call, two names
            where, limit=PAGE_SIZE, cursor=cursor
        )
        return await _every_page(pages)

    found = _run(work)
    if found:
        typer.echo("\n".join(f"{d.id}\t{d.label}\t{d.status.value}" for d in found))


@devices_app.command("revoke")
def devices_revoke(
    device_id: Annotated[str, typer.Argument(metavar="ID", help="The device's id.")],
) -> None:
    """Revoke a device: it stops verifying at once and frees its seat, for good."""

    async def work(services: Services) -> Device:
        parsed = _license_id(device_id)
        if parsed is None:
            raise NotFoundError("No such device.")
        return await services.devices.update(
            parsed, label=None, status=DeviceStatus.REVOKED, by=Actor.cli()
        )

    typer.echo(f"revoked device {_run(work).id}")


@devices_app.command("cull")
def devices_cull() -> None:
    """Free the seats of devices silent longer than their license's cull_after."""

    async def work(services: Services) -> int:
        return await services.devices.cull(by=Actor.cli())

    count = _run(work)
    typer.echo(f"culled {count} device{'' if count == 1 else 's'}")
