"""When the bot first saw each alert firing, on its own clock.

Revision ID: 0010_alert_seen_firing
Revises: 0009_watch_changes
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import storage.models

revision = "0010_alert_seen_firing"
down_revision = "0009_watch_changes"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("alert") as batch:
        batch.add_column(sa.Column("firing_seen_at", storage.models.UTCDateTime(), nullable=True))
    # an alert stored before this column was first seen when its row was written
    op.execute(sa.text("UPDATE alert SET firing_seen_at = first_seen_at WHERE status = 'firing'"))


def downgrade() -> None:
    with op.batch_alter_table("alert") as batch:
        batch.drop_column("firing_seen_at")
