"""Cookie sessions: the digest of a browser session's cookie.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("sessions") as batch:
        batch.add_column(sa.Column("cookie_digest", sa.LargeBinary(32), nullable=True))
        batch.create_unique_constraint("uq_sessions_cookie_digest", ["cookie_digest"])


def downgrade() -> None:
    with op.batch_alter_table("sessions") as batch:
        batch.drop_constraint("uq_sessions_cookie_digest", type_="unique")
        batch.drop_column("cookie_digest")
