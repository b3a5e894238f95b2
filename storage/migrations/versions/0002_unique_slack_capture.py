"""Capture each Slack message once: unique (incident, ts) for journal entries from Slack.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "uq_journal_slack_message",
        "journal_entry",
        ["incident_id", "slack_ts"],
        unique=True,
        sqlite_where=sa.text("via = 'slack'"),
        postgresql_where=sa.text("via = 'slack'"),
    )


def downgrade() -> None:
    op.drop_index("uq_journal_slack_message", table_name="journal_entry")
