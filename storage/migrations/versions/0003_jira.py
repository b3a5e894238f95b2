"""Jira tickets: browse URL, last known assignee, thread link, lookup by key for the webhook.

Revision ID: 0003_jira
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_jira"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("incident", schema=None) as batch_op:
        batch_op.add_column(sa.Column("jira_url", sa.String(length=500), nullable=True))
        batch_op.add_column(sa.Column("jira_assignee", sa.String(length=200), nullable=True))
        batch_op.add_column(
            sa.Column("jira_thread_linked", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch_op.create_index(batch_op.f("ix_incident_jira_key"), ["jira_key"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("incident", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_incident_jira_key"))
        batch_op.drop_column("jira_thread_linked")
        batch_op.drop_column("jira_assignee")
        batch_op.drop_column("jira_url")
