"""`gatehouse audit prune`: the real console script on SQLite and PostgreSQL deletes the
events older than the age given, prints how many, and refuses malformed ages cleanly."""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from gatehouse.server.audit.models import Actor, AuditEvent, Subject
from gatehouse.server.clock import ManualClock
from gatehouse.server.config import Settings
from gatehouse.server.storage.tables import audit_events
from gatehouse.server.wiring import build_services
from tests.e2e.harness import PASSWORD, Deployment, assert_clean_failure

SECRET = "audit-cli-e2e-secret-" + "a" * 40


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, deployment: Deployment) -> Deployment:
    """The deployment on the embedded SQLite file, or on a fresh PostgreSQL database; in
    both, alice was created by the CLI (so the trail holds events of now)."""
    deployment.env["GATEHOUSE_SECRET_KEY"] = SECRET
    if request.param == "postgresql":
        url: str = request.getfixturevalue("postgres_url")
        deployment.env["GATEHOUSE_DATABASE_URL"] = url
        ok(deployment.cli("db", "upgrade"))
    ok(deployment.cli("users", "create", "alice", "--password-stdin", stdin=PASSWORD + "\n"))
    return deployment


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, (result.returncode, result.stdout, result.stderr)
    return result.stdout


def settings_of(deployment: Deployment) -> Settings:
    return Settings(
        data_dir=deployment.data_dir,
        database_url=deployment.env.get("GATEHOUSE_DATABASE_URL"),
        secret_key=SECRET,
        password_hashing="test",
    )


async def record_at(deployment: Deployment, when: datetime, count: int) -> None:
    """`count` events recorded by the server's own recorder, as if at `when`."""
    services = build_services(settings_of(deployment), clock=ManualClock(when))
    try:
        for n in range(count):
            services.audit_recorder.record(
                AuditEvent(
                    type="login.failed",
                    outcome="failure",
                    actor=Actor.anonymous(),
                    subject=Subject("username", "alice"),
                    detail={"reason": "wrong_password", "n": n},
                )
            )
    finally:
        await services.close()  # writes what is queued


async def stored_times(deployment: Deployment) -> list[datetime]:
    services = build_services(settings_of(deployment))
    try:
        async with services.db.read() as conn:
            return list((await conn.execute(sa.select(audit_events.c.time))).scalars())
    finally:
        await services.close()


async def test_prune_deletes_only_events_older_than_the_age_and_says_how_many(
    store: Deployment,
) -> None:
    """Three events of 100 days ago go with `--older-than 90d`, today's stay; a second run
    deletes none."""
    now = datetime.now(UTC)
    await record_at(store, now - timedelta(days=100), 3)
    await record_at(store, now - timedelta(days=80), 1)
    before = await stored_times(store)
    assert len(before) == 6  # alice's user.created and user.registered, and the four above

    pruned = ok(store.cli("audit", "prune", "--older-than", "90d"))
    assert pruned.strip() == "deleted 3 audit events older than 90d"
    left = await stored_times(store)
    assert len(left) == 3
    assert min(left) > now - timedelta(days=90)

    again = ok(store.cli("audit", "prune", "--older-than", "90d"))
    assert again.strip() == "deleted 0 audit events older than 90d"
    hours = ok(store.cli("audit", "prune", "--older-than", "1920h"))  # 80 days
    assert hours.strip() == "deleted 1 audit event older than 1920h"


@pytest.mark.parametrize("age", ["90", "90days", "-5d", "0d", "1.5h", "d", "99999999999d"])
def test_a_malformed_age_is_one_clean_error(deployment: Deployment, age: str) -> None:
    """Not a whole positive number with d, h, m or s: exit 1, one error line, no trace."""
    refused = deployment.cli("audit", "prune", "--older-than", age)
    assert_clean_failure(refused, 1)
    assert len(refused.stderr.splitlines()) == 1


def test_every_unit_is_understood(deployment: Deployment) -> None:
    """Days, hours, minutes and seconds; nothing recorded that long ago, so 0 each time."""
    for age in ("90d", "12h", "30m", "3600s", "999999999d"):
        assert ok(deployment.cli("audit", "prune", "--older-than", age)).startswith("deleted ")
