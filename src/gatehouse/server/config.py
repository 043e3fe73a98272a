"""Settings: every knob of the server, read from `GATEHOUSE_*` environment variables.

`Settings()` is built only at entry points (the CLI, `create_app`, test fixtures) and passed
down; nothing reads the environment at import time. Validation happens here, at start, with
messages that name the variable and never print a secret.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Literal, Self

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

_DRIVERS = {
    "sqlite": "sqlite+pysqlite",
    "sqlite+aiosqlite": "sqlite+pysqlite",
    "sqlite+pysqlite": "sqlite+pysqlite",
    "postgres": "postgresql+asyncpg",
    "postgresql": "postgresql+asyncpg",
    "postgresql+asyncpg": "postgresql+asyncpg",
}


DATABASE_FILE_NAME = "gatehouse.db"


class Settings(BaseSettings):
    """Server configuration. The README's table lists every field with its variable."""

    model_config = SettingsConfigDict(
        env_prefix="GATEHOUSE_", env_nested_delimiter="__", extra="ignore", frozen=True
    )

    data_dir: Path = Field(
        default=Path(".gatehouse"),
        description="Folder for the SQLite database and the generated secret key.",
    )
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL; sqlite:/// or postgresql://. Default: SQLite in data_dir.",
    )
    issuer: str = Field(default="http://127.0.0.1:8000", description="`iss` of every token.")
    audience: str = Field(default="gatehouse", description="`aud` of access tokens.")
    access_token_ttl: timedelta = Field(default=timedelta(minutes=15))
    refresh_idle_ttl: timedelta = Field(default=timedelta(days=14))
    refresh_absolute_ttl: timedelta = Field(default=timedelta(days=30))
    token_leeway: timedelta = Field(default=timedelta(seconds=30))
    docs_enabled: bool = True
    secret_key: SecretStr | None = Field(
        default=None,
        description="Server secret (>= 32 chars). Default: generated once in data_dir.",
    )
    password_hashing: Literal["owasp", "test"] = Field(
        default="owasp",
        description="argon2id cost profile; 'test' is cheap and only for test suites.",
    )
    hash_concurrency: int = Field(default_factory=lambda: os.cpu_count() or 1, ge=1, le=256)
    max_body_bytes: int = Field(default=64 * 1024, ge=1024, le=10 * 1024 * 1024)
    key_refresh_interval: timedelta = Field(default=timedelta(seconds=60))
    revocation_poll_interval: timedelta = Field(
        default=timedelta(milliseconds=250),
        description="How soon other workers and hosts see a revoked session or changed user.",
    )
    db_pool_size: int = Field(default=10, ge=1, le=200)
    session_retention: timedelta = Field(
        default=timedelta(days=30),
        description="How long an ended session is kept before it and its refresh-token "
        "history are deleted.",
    )
    cookie_secure: bool = Field(
        default=True,
        description="Mark the browser-session cookie Secure; false only for local http.",
    )
    api_key_in_query: bool = Field(
        default=False, description="Also accept an API key as ?api_key= (off: URLs leak)."
    )
    api_key_in_cookie: bool = Field(
        default=False, description="Also accept an API key in the gatehouse_api_key cookie."
    )
    device_cull_interval: timedelta = Field(
        default=timedelta(0),
        description="How often the server frees the seats of devices silent past their "
        "license's cull_after (seconds); 0 runs none (use `gatehouse devices cull`).",
    )
    trusted_proxies: Annotated[
        tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...], NoDecode
    ] = Field(
        default=(),
        description="Peers whose X-Forwarded-For / Forwarded headers name the client: "
        "addresses or CIDR networks, comma-separated. Default: none (loopback included).",
    )

    @field_validator(
        "access_token_ttl",
        "refresh_idle_ttl",
        "refresh_absolute_ttl",
        "token_leeway",
        "key_refresh_interval",
        "revocation_poll_interval",
        "session_retention",
        "device_cull_interval",
        mode="before",
    )
    @classmethod
    def _seconds(cls, value: object) -> object:
        """Durations are seconds ("900", "0.25"), or ISO 8601 ("PT15M")."""
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                return value
        return value

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _networks(cls, value: object) -> object:
        """A comma- or space-separated list (or a JSON list) of addresses and CIDR networks."""
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                try:
                    value = json.loads(text)
                except ValueError:
                    raise ValueError("is not a valid JSON list") from None
            else:
                value = [item for item in re.split(r"[\s,]+", text) if item]
        if not isinstance(value, list | tuple):
            return value
        networks = []
        for position, item in enumerate(value, start=1):
            try:
                networks.append(ipaddress.ip_network(str(item).strip()))
            except ValueError:
                # Name the position, not the text: the loader never prints a value back.
                raise ValueError(
                    f"entry {position} is not an IP address or a CIDR network without host bits"
                ) from None
        return tuple(networks)

    @field_validator("issuer")
    @classmethod
    def _issuer_is_url(cls, value: str) -> str:
        if not value.startswith(("https://", "http://")):
            raise ValueError("must be an http(s) URL")
        return value.rstrip("/")

    @field_validator("audience")
    @classmethod
    def _audience_not_empty(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be empty")
        return value

    @field_validator("database_url")
    @classmethod
    def _database_url_driver(cls, value: str | None) -> str | None:
        if value is None:
            return None
        scheme, sep, rest = value.partition("://")
        if not sep or scheme not in _DRIVERS:
            raise ValueError("must start with sqlite:/// or postgresql://")
        return f"{_DRIVERS[scheme]}://{rest}"

    @field_validator("secret_key")
    @classmethod
    def _secret_long_enough(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 32:
            raise ValueError("must be at least 32 characters")
        return value

    @model_validator(mode="after")
    def _ttls_consistent(self) -> Self:
        if not timedelta(seconds=30) <= self.access_token_ttl <= timedelta(hours=1):
            raise ValueError("GATEHOUSE_ACCESS_TOKEN_TTL must be between 30 s and 1 h")
        if self.refresh_idle_ttl <= self.access_token_ttl:
            raise ValueError("GATEHOUSE_REFRESH_IDLE_TTL must exceed the access token TTL")
        if self.refresh_absolute_ttl < self.refresh_idle_ttl:
            raise ValueError("GATEHOUSE_REFRESH_ABSOLUTE_TTL must be at least the idle TTL")
        if not timedelta(0) <= self.token_leeway <= timedelta(minutes=5):
            raise ValueError("GATEHOUSE_TOKEN_LEEWAY must be between 0 and 5 minutes")
        if not timedelta(milliseconds=50) <= self.revocation_poll_interval <= timedelta(seconds=10):
            raise ValueError("GATEHOUSE_REVOCATION_POLL_INTERVAL must be between 0.05 and 10 s")
        if not timedelta(hours=1) <= self.session_retention <= timedelta(days=3650):
            raise ValueError("GATEHOUSE_SESSION_RETENTION must be between 1 hour and 10 years")
        if self.device_cull_interval < timedelta(0):
            raise ValueError("GATEHOUSE_DEVICE_CULL_INTERVAL must be 0 (off) or positive")
        if self.key_refresh_interval < timedelta(seconds=1):
            raise ValueError("GATEHOUSE_KEY_REFRESH_INTERVAL must be at least 1 s")
        return self

    @property
    def resolved_database_url(self) -> str:
        """The SQLAlchemy URL to connect to, with the driver Gatehouse uses for it."""
        if self.database_url is not None:
            return self.database_url
        return f"sqlite+pysqlite:///{self.data_dir / DATABASE_FILE_NAME}"

    @property
    def is_sqlite(self) -> bool:
        return self.resolved_database_url.startswith("sqlite")
