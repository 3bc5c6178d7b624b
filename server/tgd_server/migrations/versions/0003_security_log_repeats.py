"""Security log bounded: repeats of one refusal (source, reason) aggregated in one row

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01 15:40:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("security_log") as batch:
        batch.add_column(sa.Column("repeats", sa.Integer(), nullable=False, server_default="1"))
        batch.add_column(sa.Column("last_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("security_log") as batch:
        batch.drop_column("last_at")
        batch.drop_column("repeats")
