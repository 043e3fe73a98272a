"""Email: unique (case-insensitive) addresses, verification, single-use account tokens,
and the mail outbox.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01
"""

import hashlib
import logging
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

from gatehouse.server.accounts.emails import canonical_email, fold_email
from gatehouse.server.errors import InvalidEmailError
from gatehouse.server.storage.tables import UTCDateTime

log = logging.getLogger("gatehouse")
_BATCH = 1000
_users = sa.table(
    "users",
    sa.column("id", sa.Uuid()),
    sa.column("email", sa.String()),
    sa.column("email_canonical", sa.String()),
    sa.column("created_at", UTCDateTime()),
)

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("email_canonical", sa.String(320), nullable=True))
        batch.add_column(
            sa.Column("email_verified", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    _fill_email_canonical(op.get_bind())
    with op.batch_alter_table("users") as batch:
        batch.create_unique_constraint("uq_users_email_canonical", ["email_canonical"])
    op.create_table(
        "account_tokens",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("purpose", sa.String(16), nullable=False),
        sa.Column("digest", sa.LargeBinary(32), nullable=False),
        sa.Column("email", sa.String(320), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.Column("used_at", UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name="fk_account_tokens_user_id_users", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_account_tokens"),
        sa.UniqueConstraint("digest", name="uq_account_tokens_digest"),
    )
    op.create_index("ix_account_tokens_expires_at", "account_tokens", ["expires_at"])
    op.create_index("ix_account_tokens_user_id_purpose", "account_tokens", ["user_id", "purpose"])
    op.create_table(
        "mail_outbox",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("payload", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("next_attempt_at", UTCDateTime(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.Column("last_error", sa.String(200), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_mail_outbox"),
    )
    op.create_index("ix_mail_outbox_next_attempt_at", "mail_outbox", ["next_attempt_at"])


def _canonical(email: str) -> str:
    """The comparison form the server computes; an address stored before addresses were
    validated (it does not parse now) is folded as it stands, so it still holds its claim."""
    try:
        return canonical_email(email)[1]
    except InvalidEmailError:
        return fold_email(email.strip())


def _fill_email_canonical(conn: sa.Connection) -> None:
    """Give every address its canonical form, oldest account first, in batches.

    Two accounts whose addresses fold to one (`Alice@x` and `alice@x`) cannot both hold
    it under the unique index: the oldest keeps the claim; the others keep their `email`
    text (nothing is lost) with `email_canonical` NULL, so they cannot use the address for
    resets until they set an address of their own. Every such group is reported by user
    ids (never the address) on the `gatehouse` logger and on stderr.
    """
    # digest of the canonical address -> the account holding it (a digest: 16 bytes a row
    # however long the address, and no address kept in memory longer than its batch).
    claims: dict[bytes, Any] = {}
    duplicates: dict[bytes, list[Any]] = {}
    after: tuple[Any, Any] | None = None
    order = (_users.c.created_at, _users.c.id)
    while True:
        page = (
            sa.select(_users.c.id, _users.c.email, _users.c.created_at)
            .where(_users.c.email.is_not(None))
            .order_by(*order)
            .limit(_BATCH)
        )
        if after is not None:
            page = page.where(
                sa.tuple_(*order)
                > sa.tuple_(sa.literal(after[0], UTCDateTime()), sa.literal(after[1], sa.Uuid()))
            )
        rows = conn.execute(page).all()
        if not rows:
            break
        updates = []
        for row in rows:
            canonical = _canonical(row.email)
            key = hashlib.blake2b(
                canonical.encode("utf-8", "surrogatepass"), digest_size=16
            ).digest()
            if key in claims:
                duplicates.setdefault(key, [claims[key]]).append(row.id)
                continue
            claims[key] = row.id
            updates.append({"row_id": row.id, "canonical": canonical})
        if updates:
            conn.execute(
                sa.update(_users)
                .where(_users.c.id == sa.bindparam("row_id"))
                .values(email_canonical=sa.bindparam("canonical")),
                updates,
            )
        after = (rows[-1].created_at, rows[-1].id)
    for ids in duplicates.values():
        kept, *others = ids
        message = (
            f"migration 0006: {len(ids)} accounts share one email address (compared "
            f"case-insensitively); the oldest, user {kept}, keeps it; "
            f"user{'s' if len(others) > 1 else ''} {', '.join(str(i) for i in others)} "
            "keep their address text but cannot use it for password resets or "
            "verification until they set an address of their own"
        )
        # `gatehouse serve` logs to stderr; `gatehouse db upgrade` configures no logging,
        # so Python's last-resort handler writes the warning to stderr.
        log.warning("%s", message)


def downgrade() -> None:
    op.drop_index("ix_mail_outbox_next_attempt_at", table_name="mail_outbox")
    op.drop_table("mail_outbox")
    op.drop_index("ix_account_tokens_user_id_purpose", table_name="account_tokens")
    op.drop_index("ix_account_tokens_expires_at", table_name="account_tokens")
    op.drop_table("account_tokens")
    with op.batch_alter_table("users") as batch:
        batch.drop_constraint("uq_users_email_canonical", type_="unique")
        batch.drop_column("email_verified")
        batch.drop_column("email_canonical")
