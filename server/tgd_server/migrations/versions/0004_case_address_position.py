"""Where the case-file address is: cases.address_lat and address_lon (the console's map
shows the address as a marker of its own)

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 15:40:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("cases") as batch:
        batch.add_column(sa.Column("address_lat", sa.Float(), nullable=True))
        batch.add_column(sa.Column("address_lon", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("cases") as batch:
        batch.drop_column("address_lon")
        batch.drop_column("address_lat")
