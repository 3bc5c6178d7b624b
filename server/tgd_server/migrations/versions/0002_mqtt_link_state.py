"""MQTT presence of a handset: devices.link_state and link_changed_at

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26 09:20:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("devices") as batch:
        batch.add_column(sa.Column("link_state", sa.String(length=8), nullable=True))
        batch.add_column(sa.Column("link_changed_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("devices") as batch:
        batch.drop_column("link_changed_at")
        batch.drop_column("link_state")
