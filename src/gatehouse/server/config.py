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
from urllib.parse import urlsplit

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
    # --- Abuse defence (server/limits): per-account lockout, per-address limits. ---
    lockout_threshold: int = Field(
        default=10, ge=1, le=1000, description="Failures of one username that lock it."
    )
    lockout_window: timedelta = Field(
        default=timedelta(minutes=15), description="Failures older than this are forgotten."
    )
    lockout_base: timedelta = Field(
        default=timedelta(seconds=60), description="The first lock; each further one doubles."
    )
    lockout_max: timedelta = Field(
        default=timedelta(minutes=15), description="The longest a name is locked at once."
    )
    ip_failure_limit: int = Field(
        default=100, ge=1, description="Failed credential attempts per address per window."
    )
    ip_failure_window: timedelta = Field(default=timedelta(minutes=10))
    register_ip_limit: int = Field(
        default=20, ge=1, description="Registrations per address per window."
    )
    register_ip_window: timedelta = Field(default=timedelta(hours=1))
    recovery_ip_limit: int = Field(
        default=10,
        ge=1,
        description="Password-reset and verification mail requests per address per window.",
    )
    recovery_ip_window: timedelta = Field(default=timedelta(hours=1))
    redis_url: SecretStr | None = Field(
        default=None,
        description="redis:// or rediss:// URL: limits and lockouts shared by every worker "
        "and host. Default: kept in each process.",
    )
    redis_key_prefix: str = Field(
        default="gatehouse:",
        min_length=1,
        max_length=100,
        description="Prefix of every Redis key, so several deployments can share one Redis.",
    )
    hash_queue_max: int = Field(
        default=32,
        ge=1,
        le=100_000,
        description="Password checks that may wait for a hashing thread, per process; "
        "past it, 503 overloaded at once.",
    )
    # --- Email: verification, password reset, delivery. ---
    require_verified_email: bool = Field(
        default=False, description="Refuse logins of accounts whose address is not verified."
    )
    verify_on_register: bool = Field(
        default=False, description="Mail a verification link when an account is registered."
    )
    reset_url: str | None = Field(
        default=None, description="Page the reset link opens. Default: ISSUER/reset-password."
    )
    verify_url: str | None = Field(
        default=None, description="Page the verification link opens. Default: ISSUER/verify-email."
    )
    reset_token_ttl: timedelta = Field(default=timedelta(minutes=30))
    verify_token_ttl: timedelta = Field(default=timedelta(hours=24))
    smtp_host: str | None = Field(
        default=None, description="SMTP server; unset: mails are written to DATA_DIR/mail/."
    )
    smtp_port: int = Field(default=587, ge=1, le=65535)
    smtp_security: Literal["starttls", "tls", "none"] = "starttls"
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_timeout: timedelta = Field(default=timedelta(seconds=10))
    mail_from: str | None = Field(
        default=None, description="From address. Default: gatehouse@<the issuer's host>."
    )
    mail_templates_dir: Path | None = Field(
        default=None, description="Folder whose templates replace the built-in ones."
    )
    # --- Audit trail, logs, metrics. ---
    audit_retention: timedelta = Field(
        default=timedelta(days=90),
        description="Audit events older than this are deleted (about hourly); 0 keeps all.",
    )
    metrics_enabled: bool = Field(default=True, description="Serve GET /metrics.")
    log_format: Literal["json", "text"] = Field(
        default="json", description="`json`: one object per line; `text` for reading by eye."
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
        "lockout_window",
        "lockout_base",
        "lockout_max",
        "ip_failure_window",
        "register_ip_window",
        "recovery_ip_window",
        "reset_token_ttl",
        "verify_token_ttl",
        "smtp_timeout",
        "audit_retention",
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

    @field_validator("reset_url", "verify_url")
    @classmethod
    def _link_is_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("https://", "http://")):
            raise ValueError("must be an http(s) URL")
        return value

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

    @model_validator(mode="after")
    def _limits_and_mail_consistent(self) -> Self:
        for name in (
            "lockout_window",
            "lockout_base",
            "ip_failure_window",
            "register_ip_window",
            "recovery_ip_window",
            "smtp_timeout",
        ):
            if getattr(self, name) < timedelta(seconds=1):
                raise ValueError(f"GATEHOUSE_{name.upper()} must be at least 1 s")
        if self.lockout_max < self.lockout_base:
            raise ValueError("GATEHOUSE_LOCKOUT_MAX must be at least GATEHOUSE_LOCKOUT_BASE")
        if not timedelta(minutes=1) <= self.reset_token_ttl <= timedelta(days=1):
            raise ValueError("GATEHOUSE_RESET_TOKEN_TTL must be between 1 minute and 1 day")
        if not timedelta(minutes=1) <= self.verify_token_ttl <= timedelta(days=30):
            raise ValueError("GATEHOUSE_VERIFY_TOKEN_TTL must be between 1 minute and 30 days")
        if self.audit_retention < timedelta(0):
            raise ValueError("GATEHOUSE_AUDIT_RETENTION must be 0 (keep all) or positive")
        if self.redis_url is not None and not self.redis_url.get_secret_value().startswith(
            ("redis://", "rediss://", "unix://")
        ):
            raise ValueError("GATEHOUSE_REDIS_URL must start with redis://, rediss:// or unix://")
        return self

    @property
    def resolved_database_url(self) -> str:
        """The SQLAlchemy URL to connect to, with the driver Gatehouse uses for it."""
        if self.database_url is not None:
            return self.database_url
        return f"sqlite+pysqlite:///{self.data_dir / DATABASE_FILE_NAME}"

    @property
    def resolved_reset_url(self) -> str:
        return self.reset_url or f"{self.issuer}/reset-password"

    @property
    def resolved_verify_url(self) -> str:
        return self.verify_url or f"{self.issuer}/verify-email"

    @property
    def resolved_mail_from(self) -> str:
        return self.mail_from or f"gatehouse@{urlsplit(self.issuer).hostname}"

    @property
    def is_sqlite(self) -> bool:
        return self.resolved_database_url.startswith("sqlite")
