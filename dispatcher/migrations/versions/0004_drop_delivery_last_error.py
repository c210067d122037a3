"""deliveries.last_error goes: nothing read it (each attempt keeps its own error)

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30 01:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # batch mode: SQLite rebuilds the table, PostgreSQL drops the column in place
    with op.batch_alter_table("deliveries") as batch:
        batch.drop_column("last_error")


def downgrade() -> None:
    with op.batch_alter_table("deliveries") as batch:
        batch.add_column(sa.Column("last_error", sa.Text(), nullable=True))
