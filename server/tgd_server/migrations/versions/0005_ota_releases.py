"""Over-the-air updates (issue 17): releases (signed .tgdrel), roll-outs, and each
handset's last `ota` report and offer (device_ota)

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 19:40:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "releases",
        sa.Column("version", sa.String(32), nullable=False),
        sa.Column("manifest", sa.Text(), nullable=False),
        sa.Column("signature_hex", sa.String(128), nullable=False),
        sa.Column("key_id", sa.String(16), nullable=False),
        sa.Column("min_version", sa.String(32), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("bundle", sa.LargeBinary(), nullable=False),
        sa.Column("uploaded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("uploaded_by", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(["uploaded_by"], ["users.id"], name=op.f("fk_releases_uploaded_by_users")),
        sa.PrimaryKeyConstraint("version", name=op.f("pk_releases")),
    )
    op.create_table(
        "rollouts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("version", sa.String(32), nullable=False),
        sa.Column("canary", sa.String(32), nullable=False),
        sa.Column("stages", sa.String(64), nullable=False),
        sa.Column("canary_timeout_s", sa.Integer(), nullable=False),
        sa.Column("phase", sa.String(16), nullable=False),
        sa.Column("stage", sa.Integer(), nullable=False),
        sa.Column("phase_started_at", sa.Float(), nullable=False),
        sa.Column("canary_offered_at", sa.Float(), nullable=True),
        sa.Column("paused_phase", sa.String(16), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.Integer(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["version"], ["releases.version"], name=op.f("fk_rollouts_version_releases")),
        sa.ForeignKeyConstraint(["created_by"], ["users.id"], name=op.f("fk_rollouts_created_by_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rollouts")),
    )
    op.create_index(op.f("ix_rollouts_version"), "rollouts", ["version"])
    op.create_table(
        "device_ota",
        sa.Column("device_id", sa.String(32), nullable=False),
        sa.Column("slot", sa.String(1), nullable=True),
        sa.Column("result", sa.String(16), nullable=True),
        sa.Column("tried_version", sa.String(32), nullable=True),
        sa.Column("reported_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("offered_version", sa.String(32), nullable=True),
        sa.Column("offered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("failed_version", sa.String(32), nullable=True),
        sa.ForeignKeyConstraint(["device_id"], ["devices.id"], name=op.f("fk_device_ota_device_id_devices")),
        sa.PrimaryKeyConstraint("device_id", name=op.f("pk_device_ota")),
    )


def downgrade() -> None:
    op.drop_table("device_ota")
    op.drop_index("ix_rollouts_version", table_name="rollouts")
    op.drop_table("rollouts")
    op.drop_table("releases")
