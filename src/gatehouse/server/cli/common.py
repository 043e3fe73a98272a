"""What every `gatehouse` command shares: settings, running services, errors, paging.

A user-caused failure prints one line on stderr and exits 1; a configuration error names
the variable and exits 2.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import NoReturn, Protocol, TypeVar
from uuid import UUID

import typer
from pydantic import ValidationError

from gatehouse.server.accounts.models import User
from gatehouse.server.config import Settings
from gatehouse.server.errors import GatehouseError, InvalidUsernameError
from gatehouse.server.mail.templates import MailTemplateError
from gatehouse.server.storage import migrate
from gatehouse.server.tokens.service import KeyDecryptionError
from gatehouse.server.wiring import Services, build_services

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)


class _Page(Protocol[T_co]):
    @property
    def items(self) -> Sequence[T_co]: ...

    @property
    def next_cursor(self) -> str | None: ...


async def _every_page(fetch: Callable[[str | None], Awaitable[_Page[T_co]]]) -> list[T_co]:
    """Every item of a paged listing, following `next_cursor` to the end."""
    items: list[T_co] = []
    cursor = None
    while True:
        page = await fetch(cursor)
        items.extend(page.items)
        if page.next_cursor is None:
            return items
        cursor = page.next_cursor


def _fail(message: str, code: int = 1) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def load_settings() -> Settings:
    try:
        return Settings()
    except ValidationError as exc:
        lines = []
        for error in exc.errors(include_input=False, include_url=False):
            name = "_".join(str(p) for p in error["loc"]).upper()
            variable = f"GATEHOUSE_{name}" if name else "configuration"
            lines.append(f"  {variable}: {error['msg']}")
        _fail("invalid configuration\n" + "\n".join(lines), code=2)


def _run(work: Callable[[Services], Awaitable[T]], *, check_schema: bool = True) -> T:
    """Build services, run `work`, close; turn known failures into one-line errors.

    With `check_schema`, the embedded SQLite database is migrated first (so `users create`
    works before the first `serve`), and an outdated PostgreSQL schema stops the command.
    """

    async def main() -> T:
        services = build_services(load_settings())
        try:
            if check_schema:
                await _ensure_schema(services, migrate_schema=services.db.is_sqlite)
            return await work(services)
        finally:
            await services.close()

    try:
        return asyncio.run(main())
    except (KeyDecryptionError, MailTemplateError) as exc:
        _fail(str(exc), code=2)
    except GatehouseError as exc:
        _fail(exc.message)


async def _ensure_schema(services: Services, *, migrate_schema: bool) -> None:
    if migrate_schema:
        await migrate.upgrade(services.db)
    elif not await migrate.is_current(services.db):
        _fail(
            "the database schema is not current; run `gatehouse db upgrade` "
            "(or `gatehouse serve --migrate`)",
            code=2,
        )


def _instant(text: str) -> datetime:
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        _fail("--expires-at must be an RFC 3339 instant, e.g. 2030-01-01T00:00:00Z")


# Rows per page when a command lists everything.
PAGE_SIZE = 1000


async def _user_id(services: Services, username: str) -> UUID | None:
    """The id of the user of this name, or None (also for a name no user can have)."""
    try:
        user: User | None = await services.accounts.find_by_username(username)
    except InvalidUsernameError:
        return None
    return user.id if user is not None else None


async def _owner_id(services: Services, username: str) -> UUID:
    found = await _user_id(services, username)
    if found is None:
        _fail(f"no such user {username!r}")
    return found
