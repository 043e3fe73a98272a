"""`gatehouse licenses`: create and list licenses (seats for machines).

`create` prints the license id and then its key, which is shown this once (storage keeps
only its digest); the reminder goes to stderr so stdout stays easy to parse.
"""

from __future__ import annotations

import re
from typing import Annotated
from uuid import UUID

import typer

from gatehouse.server.audit.models import Actor
from gatehouse.server.cli.common import PAGE_SIZE, _every_page, _fail, _instant, _owner_id, _run
from gatehouse.server.devices.models import License, LicensePolicy
from gatehouse.server.wiring import Services

licenses_app = typer.Typer(help="Licenses: seats for machines.", no_args_is_help=True)

_MAX_SEATS = 1_000_000
_MAX_SECONDS = 10 * 365 * 86400
_MAX_COMPONENTS = 32
_MAX_FEATURES = 64
_FEATURE = re.compile(r"[^\x00-\x1f\x7f]{1,64}")


def _check_range(option: str, value: int | None, low: int, high: int) -> None:
    if value is not None and not low <= value <= high:
        _fail(f"{option} must be between {low} and {high}")


@licenses_app.command("create")
def licenses_create(
    product: Annotated[str, typer.Option("--product", help="The product licensed.")],
    max_devices: Annotated[int, typer.Option("--max-devices", help="Seats: machines at once.")],
    owner: Annotated[str | None, typer.Option("--owner", help="The owner's username.")] = None,
    expires_at: Annotated[
        str | None,
        typer.Option("--expires-at", help="RFC 3339 instant with an offset; default: never."),
    ] = None,
    feature: Annotated[
        list[str] | None, typer.Option("--feature", help="A feature it grants; repeatable.")
    ] = None,
    min_components: Annotated[
        int | None,
        typer.Option(
            "--min-components",
            help="A changed machine still verifies when this many components match.",
        ),
    ] = None,
    heartbeat_interval: Annotated[
        int | None, typer.Option("--heartbeat-interval", help="Seconds between check-ins.")
    ] = None,
    cull_after: Annotated[
        int | None,
        typer.Option(
            "--cull-after", help="Seconds of silence after which a device loses its seat."
        ),
    ] = None,
    offline_grace: Annotated[
        int | None,
        typer.Option("--offline-grace", help="Seconds a license file stays valid offline."),
    ] = None,
) -> None:
    """Create a license; print its id, then its key (shown this once: only a digest is kept)."""
    _check_range("--max-devices", max_devices, 1, _MAX_SEATS)
    _check_range("--min-components", min_components, 1, _MAX_COMPONENTS)
    _check_range("--heartbeat-interval", heartbeat_interval, 1, _MAX_SECONDS)
    _check_range("--cull-after", cull_after, 1, _MAX_SECONDS)
    _check_range("--offline-grace", offline_grace, 1, _MAX_SECONDS)
    features = feature or []
    if len(features) > _MAX_FEATURES:
        _fail(f"at most {_MAX_FEATURES} features")
    if any(_FEATURE.fullmatch(f) is None for f in features):
        _fail("a feature must be 1-64 characters without control characters")
    expires = _instant(expires_at) if expires_at is not None else None
    if expires is not None and expires.tzinfo is None:
        _fail("--expires-at needs an offset, e.g. 2030-01-01T00:00:00Z")
    policy = LicensePolicy(
        min_components=min_components,
        heartbeat_interval=heartbeat_interval,
        cull_after=cull_after,
        offline_grace=offline_grace,
    )

    async def work(services: Services) -> tuple[UUID, str]:
        owner_id = await _owner_id(services, owner) if owner is not None else None
        issued = await services.licenses.create(
            product=product,
            max_devices=max_devices,
            owner_id=owner_id,
            expires_at=expires,
            features=features,
            policy=policy,
            by=Actor.cli(),
        )
        return issued.record.id, issued.license_key

    created, key = _run(work)
    typer.echo(str(created))
    typer.echo(f"license key: {key}")
    typer.echo("The license key is not shown again: store it now.", err=True)


@licenses_app.command("list")
def licenses_list(
    owner: Annotated[str | None, typer.Option("--owner", help="Only this user's.")] = None,
) -> None:
    """List licenses, oldest first: id, product, seats_used/max_devices, status (tab-separated)."""

    def line(found: License) -> str:
        seats = f"{found.seats_used}/{found.max_devices}"
        return f"{found.id}\t{found.product}\t{seats}\t{found.status.value}"

    async def work(services: Services) -> list[License]:
        owner_id = await _owner_id(services, owner) if owner is not None else None
        pages = lambda cursor: services.licenses.list_page(  # noqa: E731 - one call, two names
            owner_id=owner_id, limit=PAGE_SIZE, cursor=cursor
        )
        return await _every_page(pages)

    found = _run(work)
    if found:
        typer.echo("\n".join(line(x) for x in found))
