"""`gatehouse`: serve, migrate, and manage users and signing keys.

Commands build Settings from the environment, call services through the composition root,
and print. A user-caused failure prints one line on stderr and exits 1; a configuration
error names the variable and exits 2. No command prints a secret, except the one thing it
creates and shows once: an API key (`api-keys create`) or a license key (`licenses create`).
"""

from __future__ import annotations

import logging.config
import os
import shutil
import sys
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

import typer
import uvicorn

from gatehouse.server.accounts.models import ADMIN_ROLE, USER_ROLE, User, UserChanges
from gatehouse.server.apikeys.models import ApiKey
from gatehouse.server.audit.models import Actor
from gatehouse.server.cli.audit import audit_app
from gatehouse.server.cli.common import (
    _ensure_schema,
    _every_page,
    _fail,
    _instant,
    _run,
    load_settings,
)
from gatehouse.server.cli.devices import devices_app
from gatehouse.server.cli.licenses import licenses_app
from gatehouse.server.errors import NotFoundError
from gatehouse.server.logs import LogFormat, logging_config
from gatehouse.server.metrics import MULTIPROCESS_DIR_ENV
from gatehouse.server.storage import migrate
from gatehouse.server.tokens.service import is_retired
from gatehouse.server.wiring import Services

app = typer.Typer(help="Gatehouse authentication server.", no_args_is_help=True)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
users_app = typer.Typer(help="User accounts.", no_args_is_help=True)
keys_app = typer.Typer(help="Token signing keys.", no_args_is_help=True)
api_keys_app = typer.Typer(help="API keys of users and service accounts.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(users_app, name="users")
app.add_typer(keys_app, name="keys")
app.add_typer(api_keys_app, name="api-keys")
app.add_typer(devices_app, name="devices")
app.add_typer(licenses_app, name="licenses")
app.add_typer(audit_app, name="audit")


async def _prepare(services: Services, *, migrate_schema: bool) -> None:
    await _ensure_schema(services, migrate_schema=migrate_schema)
    await services.keys.ensure_signing_key()


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes.")] = 1,
    migrate_schema: Annotated[
        bool | None,
        typer.Option(
            "--migrate/--no-migrate",
            help="Apply migrations first. Default: yes on SQLite, no on PostgreSQL.",
        ),
    ] = None,
    access_log: Annotated[
        bool, typer.Option("--access-log/--no-access-log", help="Log one line per request.")
    ] = True,
) -> None:
    """Run the server (migrating the embedded SQLite database and creating keys first)."""
    settings = load_settings()
    # From here on every line is in the configured format, the preparation's included.
    # (dictConfig consumes parts of its argument: uvicorn gets a config of its own.)
    logging.config.dictConfig(logging_config(settings.log_format, access_log=access_log))
    do_migrate = settings.is_sqlite if migrate_schema is None else migrate_schema
    _run(lambda services: _prepare(services, migrate_schema=do_migrate), check_schema=False)
    with _multiprocess_metrics(workers):
        _serve(host, port, workers, settings.log_format, access_log=access_log)


def _serve(host: str, port: int, workers: int, log_format: LogFormat, *, access_log: bool) -> None:
    uvicorn.run(
        "gatehouse.server.http.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level="info",
        # Applied by uvicorn in this process and in every worker. The access log is ours
        # (http/access_log.py: route template, request id, redacted query), not uvicorn's.
        log_config=logging_config(log_format, access_log=access_log),
        access_log=False,
        server_header=False,
        # Upgrade offers (h2c from every JDK client) are served as plain HTTP/1.1: see
        # http/protocol.py. Gatehouse serves no WebSocket, so no upgrade is ever accepted.
        http="gatehouse.server.http.protocol:GatehouseHttpProtocol",
        ws="none",
        # The client address comes from GATEHOUSE_TRUSTED_PROXIES (http/client_address.py);
        # uvicorn's default would trust X-Forwarded-For from any local process.
        proxy_headers=False,
    )


@contextmanager
def _multiprocess_metrics(workers: int) -> Iterator[None]:
    """With several workers: a fresh private directory for prometheus_client's per-process
    files, named in PROMETHEUS_MULTIPROC_DIR before uvicorn spawns the workers (which
    inherit it and so import prometheus_client in multiprocess mode), removed at exit.

    One worker keeps the default in-process registry. A directory the operator named in
    PROMETHEUS_MULTIPROC_DIR is used as it is and left in place.
    """
    if workers == 1 or os.environ.get(MULTIPROCESS_DIR_ENV):
        yield
        return
    directory = tempfile.mkdtemp(prefix="gatehouse-metrics-")  # mode 0700
    os.environ[MULTIPROCESS_DIR_ENV] = directory
    try:
        yield
    finally:
        del os.environ[MULTIPROCESS_DIR_ENV]
        shutil.rmtree(directory, ignore_errors=True)


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply every pending migration."""
    _run(lambda services: migrate.upgrade(services.db), check_schema=False)
    typer.echo("database is up to date")


def _read_password(password_stdin: bool) -> str:
    if password_stdin:
        line = sys.stdin.readline()
        password = line[:-1] if line.endswith("\n") else line
        if not password:
            _fail("no password on standard input")
        return password
    value: str = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    return value


@users_app.command("create")
def users_create(
    username: str,
    admin: Annotated[bool, typer.Option("--admin", help="Give the admin role.")] = False,
    role: Annotated[list[str] | None, typer.Option(help="Extra role; repeatable.")] = None,
    email: Annotated[str | None, typer.Option(help="Email address.")] = None,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from stdin.")
    ] = False,
) -> None:
    """Create a user; the password is prompted for (or read from stdin), never an argument."""
    password = _read_password(password_stdin)
    roles = {USER_ROLE, *(role or [])} | ({ADMIN_ROLE} if admin else set())

    async def work(services: Services) -> str:
        user = await services.admin.create_user(
            username, password, email=email, roles=frozenset(roles)
        )
        return f"created {user.username} ({user.id}) roles={','.join(sorted(user.roles))}"

    typer.echo(_run(work))


@users_app.command("list")
def users_list(
    prefix: Annotated[str | None, typer.Option(help="Username prefix.")] = None,
    role: Annotated[str | None, typer.Option(help="Only users with this role.")] = None,
) -> None:
    """List users."""

    def line(u: User) -> str:
        state = "active" if u.is_active else "inactive"
        return f"{u.id}  {u.username:<24} {state:<8} {','.join(sorted(u.roles))}"

    async def work(services: Services) -> list[str]:
        pages = lambda cursor: services.admin.list_users(  # noqa: E731 - one call, two names
            prefix=prefix, role=role, limit=200, cursor=cursor
        )
        return [line(u) for u in await _every_page(pages)]

    for text in _run(work):
        typer.echo(text)


@users_app.command("set-roles")
def users_set_roles(username: str, roles: list[str]) -> None:
    """Replace a user's roles (give every role the user should have)."""

    async def work(services: Services) -> str:
        user = await services.accounts.find_by_username(username)
        if user is None:
            raise NotFoundError("No such user.")
        updated = await services.admin.update_user(
            None, user.id, UserChanges(roles=frozenset(roles))
        )
        return f"{updated.username}: roles={','.join(sorted(updated.roles))}"

    typer.echo(_run(work))


@users_app.command("deactivate")
def users_deactivate(username: str) -> None:
    """Deactivate a user and end all their sessions."""

    async def work(services: Services) -> str:
        user = await services.accounts.find_by_username(username)
        if user is None:
            raise NotFoundError("No such user.")
        await services.admin.update_user(None, user.id, UserChanges(is_active=False))
        return f"{user.username}: deactivated, sessions ended"

    typer.echo(_run(work))


@keys_app.command("rotate")
def keys_rotate() -> None:
    """Add a new signing key; older keys verify until their last token has expired."""

    async def work(services: Services) -> str:
        key = await services.keys.rotate()
        return f"new signing key {key.kid}"

    typer.echo(_run(work))


@keys_app.command("list")
def keys_list() -> None:
    """List signing keys with their state."""

    async def work(services: Services) -> list[str]:
        now = services.clock.now()
        lines = []
        keys = await services.keys.list_keys()
        signing = next((k for k in keys if k.retires_at is None), None)
        for key in keys:
            if is_retired(key, now):
                state = "retired"
            elif key is signing:
                state = "signing"
            elif key.retires_at is None:
                state = "verifying"
            else:
                state = f"verifying until {key.retires_at.isoformat(timespec='seconds')}"
            created = key.created_at.isoformat(timespec="seconds")
            lines.append(f"{key.kid}  {key.algorithm}  {created}  {state}")
        return lines

    for line in _run(work):
        typer.echo(line)


async def _user_named(services: Services, username: str) -> User:
    user = await services.accounts.find_by_username(username)
    if user is None:
        raise NotFoundError("No such user.")
    return user


@api_keys_app.command("create")
def api_keys_create(
    username: str,
    name: Annotated[str, typer.Option("--name", help="What the key is for.")],
    scope: Annotated[
        list[str] | None,
        typer.Option(
            "--scope",
            help="A role of the owner, or introspect; repeatable. Default: all the owner's roles.",
        ),
    ] = None,
    expires_at: Annotated[
        str | None,
        typer.Option("--expires-at", help="RFC 3339 instant with an offset; default: never."),
    ] = None,
) -> None:
    """Create a key for USERNAME and print it once (only its digest is stored)."""
    expires = _instant(expires_at) if expires_at else None

    async def work(services: Services) -> tuple[str, str]:
        owner = await _user_named(services, username)
        issued = await services.api_keys.issue(
            owner, name=name, scopes=scope, expires_at=expires, by_admin=True, by=Actor.cli()
        )
        record = issued.record
        scopes = ",".join(sorted(record.scopes)) or "-"
        return issued.key, f"created API key {record.id} ({record.client_id}) scopes={scopes}"

    key, summary = _run(work)
    typer.echo(summary, err=True)
    typer.echo(key)


@api_keys_app.command("list")
def api_keys_list(
    owner: Annotated[str | None, typer.Option("--owner", help="Only this user's keys.")] = None,
) -> None:
    """List unrevoked keys: id, client id, owner, name, scopes, last use, expiry."""

    def line(k: ApiKey) -> str:
        used = k.last_used_at.isoformat(timespec="seconds") if k.last_used_at else "never"
        expires = k.expires_at.isoformat(timespec="seconds") if k.expires_at else "never"
        scopes = ",".join(sorted(k.scopes)) or "-"
        return (
            f"{k.id}  {k.client_id}  {k.owner_id}  {k.name!r}  scopes={scopes}"
            f"  last_used={used}  expires={expires}"
        )

    async def work(services: Services) -> list[str]:
        owner_id = (await _user_named(services, owner)).id if owner else None
        pages = lambda cursor: services.api_keys.list_page(  # noqa: E731 - one call, two names
            owner_id=owner_id, limit=200, cursor=cursor
        )
        return [line(k) for k in await _every_page(pages)]

    for text in _run(work):
        typer.echo(text)


@api_keys_app.command("revoke")
def api_keys_revoke(key_id: str) -> None:
    """Revoke a key by its id; it stops working at once."""

    async def work(services: Services) -> str:
        try:
            parsed = uuid.UUID(key_id)
        except ValueError:
            raise NotFoundError("No such API key.") from None
        await services.api_keys.revoke(parsed, owner_id=None, by=Actor.cli())
        return f"revoked API key {parsed}"

    typer.echo(_run(work))


def run() -> None:
    """Console-script entry point."""
    app()
