"""The fixtures of the mail test modules: a real SMTP server per test, and the suite's
settings with mail delivered to it. A module imports them by these names; pytest knows them
as `mailbox` and `settings` (the latter replacing conftest's for that module)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from gatehouse.server.config import Settings
from tests.http.mail import Mailbox, mail_settings, running_mailbox


@pytest.fixture(name="mailbox")
def mailbox_fixture() -> Iterator[Mailbox]:
    """A real SMTP server (aiosmtpd) on a free local port, for one test."""
    yield from running_mailbox()


@pytest.fixture(name="settings")
def mail_settings_fixture(database_url: str, tmp_path: Path, mailbox: Mailbox) -> Settings:
    """The suite's settings, with mail delivered to `mailbox`."""
    return mail_settings(database_url, tmp_path, mailbox)
