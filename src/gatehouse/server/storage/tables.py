"""Table definitions (SQLAlchemy Core). Migrations in `migrations/versions` must match."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect

metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


class UTCDateTime(sa.TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on every backend (SQLite stores it naive)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are not stored")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)  # noqa: S101 - the column type guarantees it
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


users = sa.Table(
    "users",
    metadata,
    sa.Column("id", sa.Uuid(), primary_key=True),
    sa.Column("username", sa.String(256), nullable=False),
    sa.Column("username_canonical", sa.String(256), nullable=False, unique=True),
    sa.Column("email", sa.String(320), nullable=True),
    # A service account stores NO_PASSWORD here (accounts.models): no password matches it.
    sa.Column("password_hash", sa.String(255), nullable=False),
    sa.Column("is_active", sa.Boolean(), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
    sa.Column("is_service_account", sa.Boolean(), nullable=False, server_default=sa.false()),
    # The address folded for comparison (accounts.emails.canonical_email): unique, so two
    # accounts never share one. NULL without an address, and for the later accounts of a
    # duplicate that existed before migration 0006 (reported by it, never dropped).
    sa.Column("email_canonical", sa.String(320), nullable=True, unique=True),
    sa.Column("email_verified", sa.Boolean(), nullable=False, server_default=sa.false()),
)

user_roles = sa.Table(
    "user_roles",
    metadata,
    sa.Column(
        "user_id", sa.Uuid(), sa.ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    ),
    sa.Column("role", sa.String(64), primary_key=True),
    sa.Index(None, "role"),
)

sessions = sa.Table(
    "sessions",
    metadata,
    sa.Column("id", sa.Uuid(), primary_key=True),
    sa.Column(
        "user_id",
        sa.Uuid(),
        sa.ForeignKey("users.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    sa.Column("device_name", sa.String(100), nullable=True),
    sa.Column("ip_address", sa.String(45), nullable=True),
    sa.Column("user_agent", sa.String(512), nullable=True),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("last_used_at", UTCDateTime(), nullable=False),
    sa.Column("expires_at", UTCDateTime(), nullable=False),
    # Indexed for pruning: a session has ended once either is in the past (see
    # SqlSessionRepository.delete_ended); refresh_expires_at never exceeds expires_at.
    sa.Column("refresh_expires_at", UTCDateTime(), nullable=False, index=True),
    # The digest of the one live refresh token of this session: rotation is a
    # compare-and-swap on this column, so a session can never have two.
    sa.Column("refresh_digest", sa.LargeBinary(32), nullable=False, unique=True),
    sa.Column("revoked_at", UTCDateTime(), nullable=True, index=True),
    sa.Column("revoked_reason", sa.String(32), nullable=True),
    # A browser (cookie) session: the digest of its cookie. Its refresh_digest is of a
    # token nobody was given, so /auth/refresh can never continue it.
    sa.Column("cookie_digest", sa.LargeBinary(32), nullable=True, unique=True),
)

refresh_token_history = sa.Table(
    "refresh_token_history",
    metadata,
    sa.Column("digest", sa.LargeBinary(32), primary_key=True),
    sa.Column(
        "session_id",
        sa.Uuid(),
        sa.ForeignKey("sessions.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    sa.Column("rotated_at", UTCDateTime(), nullable=False),
)

# API keys: found by `public_id` (unique), checked against `digest` = HMAC-SHA256 of the
# whole key under a pepper derived from the server secret. Revoked rows stay (revoked_at).
api_keys = sa.Table(
    "api_keys",
    metadata,
    sa.Column("id", sa.Uuid(), primary_key=True),
    sa.Column("public_id", sa.String(32), nullable=False, unique=True),
    sa.Column(
        "owner_id",
        sa.Uuid(),
        sa.ForeignKey("users.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    sa.Column("name", sa.String(100), nullable=False),
    # Space-separated role names (and `introspect`); role names never contain spaces.
    sa.Column("scopes", sa.String(2048), nullable=False),
    sa.Column("digest", sa.LargeBinary(32), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("last_used_at", UTCDateTime(), nullable=True),
    sa.Column("expires_at", UTCDateTime(), nullable=True),
    sa.Column("revoked_at", UTCDateTime(), nullable=True),
)

signing_keys = sa.Table(
    "signing_keys",
    metadata,
    sa.Column("kid", sa.String(64), primary_key=True),
    sa.Column("algorithm", sa.String(16), nullable=False),
    sa.Column("private_key_encrypted", sa.LargeBinary(), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("retires_at", UTCDateTime(), nullable=True),
)

# One row per write that can end or change a signed-in principal (a session revoked, a user
# changed or deleted). Each process polls recent rows to evict its principal cache.
principal_invalidations = sa.Table(
    "principal_invalidations",
    metadata,
    sa.Column("seq", sa.Integer(), primary_key=True, autoincrement=True),
    sa.Column("user_id", sa.Uuid(), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False, index=True),
)

# Licenses: found by `key_digest` (HMAC of the license key); `features` and `policy` are
# JSON text. Owners may be deleted; their licenses stay, without an owner.
licenses = sa.Table(
    "licenses",
    metadata,
    sa.Column("id", sa.Uuid(), primary_key=True),
    sa.Column("key_digest", sa.LargeBinary(32), nullable=False, unique=True),
    sa.Column("product", sa.String(200), nullable=False),
    sa.Column("max_devices", sa.Integer(), nullable=False),
    sa.Column(
        "owner_id",
        sa.Uuid(),
        sa.ForeignKey("users.id", ondelete="SET NULL"),
        nullable=True,
        index=True,
    ),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("features", sa.Text(), nullable=False),
    sa.Column("policy", sa.Text(), nullable=False),
    # Set when the policy culls silent devices (seconds), so the cull finds them by index.
    sa.Column("cull_after", sa.Integer(), nullable=True, index=True),
    sa.Column("expires_at", UTCDateTime(), nullable=True),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
)

# Devices: found by `fingerprint_digest` (HMAC of the fingerprint, never the value sent).
# A device holds a seat of `license_id` unless it is revoked.
devices = sa.Table(
    "devices",
    metadata,
    sa.Column("id", sa.Uuid(), primary_key=True),
    sa.Column("fingerprint_digest", sa.LargeBinary(32), nullable=False, unique=True),
    sa.Column("label", sa.String(100), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column(
        "owner_id",
        sa.Uuid(),
        sa.ForeignKey("users.id", ondelete="SET NULL"),
        nullable=True,
        index=True,
    ),
    sa.Column(
        "license_id",
        sa.Uuid(),
        sa.ForeignKey("licenses.id", ondelete="SET NULL"),
        nullable=True,
        index=True,
    ),
    sa.Column("activated", sa.Boolean(), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
    # Not indexed: it is written on every check-in, and only admin filters and the cull
    # (within one license, by its index) read it.
    sa.Column("last_seen_at", UTCDateTime(), nullable=True),
    # The admin listing pages in this order.
    sa.Index(None, "created_at", "id"),
)

# The keyed digest of each component of a device (name included), for tolerance matching.
device_components = sa.Table(
    "device_components",
    metadata,
    sa.Column(
        "device_id",
        sa.Uuid(),
        sa.ForeignKey("devices.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("digest", sa.LargeBinary(32), nullable=False, index=True),
)


# Single-use links mailed to a user: password reset and email verification. Stored as the
# HMAC digest of the token only; `email` is the address a verification token proves.
account_tokens = sa.Table(
    "account_tokens",
    metadata,
    sa.Column("id", sa.Uuid(), primary_key=True),
    sa.Column("user_id", sa.Uuid(), sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    sa.Column("purpose", sa.String(16), nullable=False),
    sa.Column("digest", sa.LargeBinary(32), nullable=False, unique=True),
    sa.Column("email", sa.String(320), nullable=True),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("expires_at", UTCDateTime(), nullable=False, index=True),
    sa.Column("used_at", UTCDateTime(), nullable=True),
    sa.Index(None, "user_id", "purpose"),
)

# The durable outbox: work that must happen outside the request (a reset request to
# resolve, a message to send), retried until done. `payload` is encrypted (Fernet, a key
# derived from the server secret): a queued message holds a live link.
mail_outbox = sa.Table(
    "mail_outbox",
    metadata,
    sa.Column("id", sa.Uuid(), primary_key=True),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("payload", sa.LargeBinary(), nullable=False),
    sa.Column("created_at", UTCDateTime(), nullable=False),
    sa.Column("next_attempt_at", UTCDateTime(), nullable=False, index=True),
    sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
    sa.Column("expires_at", UTCDateTime(), nullable=False),
    sa.Column("last_error", sa.String(200), nullable=True),
)

# The audit trail: append-only (no route edits or deletes; pruning by age only).
audit_events = sa.Table(
    "audit_events",
    metadata,
    sa.Column("id", sa.Uuid(), primary_key=True),
    sa.Column("time", UTCDateTime(), nullable=False),
    sa.Column("type", sa.String(64), nullable=False),
    sa.Column("outcome", sa.String(8), nullable=False),
    sa.Column("actor_kind", sa.String(16), nullable=False),
    sa.Column("actor_id", sa.String(64), nullable=True),
    sa.Column("subject_kind", sa.String(16), nullable=True),
    sa.Column("subject_id", sa.String(320), nullable=True),
    sa.Column("ip", sa.String(45), nullable=True),
    sa.Column("user_agent", sa.String(512), nullable=True),
    sa.Column("request_id", sa.String(64), nullable=True),
    sa.Column("detail", sa.Text(), nullable=False),
    # Newest first (and pruning by age), and each filter newest first within it; `id`
    # breaks ties of time, so a page's keyset (time, id) is read straight off the index.
    sa.Index(None, "time", "id"),
    sa.Index(None, "type", "time", "id"),
    sa.Index(None, "actor_id", "time", "id"),
    sa.Index(None, "subject_id", "time", "id"),
)
