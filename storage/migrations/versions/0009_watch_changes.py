"""The change log: which input first reported each version, and whether it was journalled.

Revision ID: 0009_watch_changes
Revises: 0008_watch
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009_watch_changes"
down_revision = "0008_watch"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("watch_version") as batch:
        batch.add_column(sa.Column("source", sa.String(10), nullable=False, server_default="runs"))
        batch.add_column(sa.Column("journalled_at_ms", sa.BigInteger(), nullable=True))
    # what was seen before the change log existed is history, not news for open incidents
    op.execute("UPDATE watch_version SET journalled_at_ms = last_at_ms")
    op.create_index(
        "ix_watch_version_pending",
        "watch_version",
        ["workflow"],
        postgresql_where=sa.text("journalled_at_ms IS NULL"),
        sqlite_where=sa.text("journalled_at_ms IS NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_watch_version_pending", table_name="watch_version")
    with op.batch_alter_table("watch_version") as batch:
        batch.drop_column("journalled_at_ms")
        batch.drop_column("source")
