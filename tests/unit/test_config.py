"""Settings validation at start."""

from __future__ import annotations

from datetime import timedelta

import pytest
from pydantic import ValidationError

from gatehouse.server.config import Settings


def test_defaults_are_safe() -> None:
    """Defaults: SQLite in DATA_DIR, access tokens of at most 15 minutes, OWASP hashing."""
    settings = Settings(_env_file=None)
    assert settings.resolved_database_url.startswith("sqlite+pysqlite:///")
    assert settings.access_token_ttl <= timedelta(minutes=15)
    assert settings.password_hashing == "owasp"
    assert settings.secret_key is None


def test_plain_database_urls_get_their_drivers() -> None:
    """postgresql:// maps to asyncpg; sqlite:/// (and the older sqlite+aiosqlite) to pysqlite."""
    assert Settings(database_url="postgresql://u@h/db").resolved_database_url == (
        "postgresql+asyncpg://u@h/db"
    )
    for url in ("sqlite:///x.db", "sqlite+aiosqlite:///x.db"):
        assert Settings(database_url=url).resolved_database_url == "sqlite+pysqlite:///x.db"


@pytest.mark.parametrize(
    "values",
    [
        {"database_url": "mysql://x"},
        {"access_token_ttl": 5},
        {"access_token_ttl": 7200},
        {"refresh_idle_ttl": 60},
        {"refresh_absolute_ttl": 3600, "refresh_idle_ttl": 7200},
        {"secret_key": "too-short"},
        {"issuer": "ftp://x"},
        {"password_hashing": "md5"},
        {"session_retention": 60},
        {"session_retention": "P4000D"},
    ],
)
def test_invalid_settings_are_refused_at_start(values: dict[str, object]) -> None:
    """Each inconsistent or unsafe value fails validation."""
    with pytest.raises(ValidationError):
        Settings(**values)  # type: ignore[arg-type]


def test_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """GATEHOUSE_* variables set the fields."""
    monkeypatch.setenv("GATEHOUSE_ACCESS_TOKEN_TTL", "300")
    monkeypatch.setenv("GATEHOUSE_ISSUER", "https://login.example.com/")
    monkeypatch.setenv("GATEHOUSE_SESSION_RETENTION", "P7D")
    settings = Settings()
    assert settings.access_token_ttl == timedelta(minutes=5)
    assert settings.session_retention == timedelta(days=7)
    assert settings.issuer == "https://login.example.com"
