"""authorized e-mail addresses per repository

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02 10:00:00

E-mail notifications now need an address confirmed for their repository (as in Quay). The
addresses of the e-mail notifications that exist before this revision are marked confirmed
for their repositories, so those notifications keep their meaning. The copy is one
INSERT … SELECT per dialect, so it also runs in offline (``--sql``) mode.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

# The e-mail address of a notification's JSON config, and "now" as naive UTC (how every time
# column is stored), in each dialect's words.
_ADDRESS = {
    "postgresql": "notifications.config ->> 'email'",
    "sqlite": "json_extract(notifications.config, '$.email')",
}
_NOW_UTC = {
    "postgresql": "(now() AT TIME ZONE 'utc')",
    "sqlite": "CURRENT_TIMESTAMP",
}


def upgrade() -> None:
    op.create_table(
        "authorized_emails",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("repository_id", sa.Integer(), nullable=False),
        sa.Column("email", sa.String(length=255), nullable=False),
        sa.Column("code_hash", sa.String(length=64), nullable=True),
        sa.Column("confirmed", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("confirmed_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(["repository_id"], ["repositories.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("code_hash"),
        sa.UniqueConstraint("repository_id", "email", name="uq_authorized_emails_repository_email"),
    )
    dialect = op.get_context().dialect.name
    address, now = _ADDRESS[dialect], _NOW_UTC[dialect]
    op.execute(
        "INSERT INTO authorized_emails (repository_id, email, confirmed, created_at, confirmed_at)"
        f" SELECT DISTINCT notifications.repository_id, {address}, TRUE, {now}, {now}"
        " FROM notifications"
        f" WHERE notifications.method = 'email' AND {address} IS NOT NULL AND {address} <> ''"
    )


def downgrade() -> None:
    op.drop_table("authorized_emails")
