"""Machine licensing: licenses, devices and their component digests.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from gatehouse.server.storage.tables import UTCDateTime

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "licenses",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("key_digest", sa.LargeBinary(32), nullable=False),
        sa.Column("product", sa.String(200), nullable=False),
        sa.Column("max_devices", sa.Integer(), nullable=False),
        sa.Column("owner_id", sa.Uuid(), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("features", sa.Text(), nullable=False),
        sa.Column("policy", sa.Text(), nullable=False),
        sa.Column("cull_after", sa.Integer(), nullable=True),
        sa.Column("expires_at", UTCDateTime(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["owner_id"], ["users.id"], name="fk_licenses_owner_id_users", ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_licenses"),
        sa.UniqueConstraint("key_digest", name="uq_licenses_key_digest"),
    )
    op.create_index("ix_licenses_owner_id", "licenses", ["owner_id"])
    op.create_index("ix_licenses_cull_after", "licenses", ["cull_after"])
    op.create_table(
        "devices",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("fingerprint_digest", sa.LargeBinary(32), nullable=False),
        sa.Column("label", sa.String(100), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("owner_id", sa.Uuid(), nullable=True),
        sa.Column("license_id", sa.Uuid(), nullable=True),
        sa.Column("activated", sa.Boolean(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("last_seen_at", UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["owner_id"], ["users.id"], name="fk_devices_owner_id_users", ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["license_id"],
            ["licenses.id"],
            name="fk_devices_license_id_licenses",
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_devices"),
        sa.UniqueConstraint("fingerprint_digest", name="uq_devices_fingerprint_digest"),
    )
    op.create_index("ix_devices_owner_id", "devices", ["owner_id"])
    op.create_index("ix_devices_license_id", "devices", ["license_id"])
    op.create_index("ix_devices_created_at_id", "devices", ["created_at", "id"])
    op.create_table(
        "device_components",
        sa.Column("device_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("digest", sa.LargeBinary(32), nullable=False),
        sa.ForeignKeyConstraint(
            ["device_id"],
            ["devices.id"],
            name="fk_device_components_device_id_devices",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("device_id", "name", name="pk_device_components"),
    )
    op.create_index("ix_device_components_digest", "device_components", ["digest"])


def downgrade() -> None:
    op.drop_index("ix_device_components_digest", table_name="device_components")
    op.drop_table("device_components")
    for index in ("ix_devices_created_at_id", "ix_devices_license_id", "ix_devices_owner_id"):
        op.drop_index(index, table_name="devices")
    op.drop_table("devices")
    op.drop_index("ix_licenses_cull_after", table_name="licenses")
    op.drop_index("ix_licenses_owner_id", table_name="licenses")
    op.drop_table("licenses")
