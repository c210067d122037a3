"""deliveries.recovers_id: the failed or skipped delivery a recovery sends again, at most once

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03 09:00:00.000000

A unique index, so that of two recoveries of one delivery (two calls at once) only one is
stored; the column is set to NULL when the recovered delivery is pruned.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # batch mode: SQLite rebuilds the table (it cannot add a foreign key in place)
    with op.batch_alter_table("deliveries") as batch:
        batch.add_column(sa.Column("recovers_id", sa.String(length=36), nullable=True))
        batch.create_foreign_key(
            "fk_deliveries_recovers_id", "deliveries", ["recovers_id"], ["id"], ondelete="SET NULL"
        )
        batch.create_index("ix_deliveries_recovers", ["recovers_id"], unique=True)


def downgrade() -> None:
    with op.batch_alter_table("deliveries") as batch:
        batch.drop_index("ix_deliveries_recovers")
        batch.drop_constraint("fk_deliveries_recovers_id", type_="foreignkey")
        batch.drop_column("recovers_id")
