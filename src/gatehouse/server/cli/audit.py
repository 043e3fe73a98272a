"""`gatehouse audit`: the audit trail from the command line.

`prune --older-than 90d` deletes events older than the age given (what the server does by
itself about hourly past `GATEHOUSE_AUDIT_RETENTION`) and prints how many went. Nothing
here edits an event.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated

import typer

from gatehouse.server.cli.common import _fail, _run
from gatehouse.server.wiring import Services

audit_app = typer.Typer(help="The audit trail.", no_args_is_help=True)

_DURATION = re.compile(r"([1-9][0-9]{0,9})([dhms])")
_UNITS = {"d": "days", "h": "hours", "m": "minutes", "s": "seconds"}


def parse_age(text: str) -> timedelta:
    """`90d`, `12h`, `30m` or `3600s` as a timedelta; anything else ends the command."""
    match = _DURATION.fullmatch(text.strip())
    if match is None:
        _fail(f"--older-than must be a whole number with d, h, m or s (like 90d), not {text!r}")
    amount, unit = match.groups()
    try:
        return timedelta(**{_UNITS[unit]: int(amount)})
    except OverflowError:
        _fail(f"--older-than {text} is too long")


@audit_app.command("prune")
def audit_prune(
    older_than: Annotated[
        str,
        typer.Option("--older-than", help="Delete events older than this: 90d, 12h, 30m, 3600s."),
    ],
) -> None:
    """Delete audit events older than an age, in small transactions; print how many."""
    age = parse_age(older_than)

    async def work(services: Services) -> int:
        return await services.audit.prune(age)

    deleted = _run(work)
    typer.echo(
        f"deleted {deleted} audit event{'' if deleted == 1 else 's'} older than {older_than}"
    )
