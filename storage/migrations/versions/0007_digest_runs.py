"""Weekly digest runs: one per period and channel; indexes for the week's facts.

Revision ID: 0007_digest_runs
Revises: 0006_handoffs
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import storage.models

revision = "0007_digest_runs"
down_revision = "0006_handoffs"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "digest_run",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("period", sa.String(10), nullable=False),
        sa.Column("channel", sa.String(40), nullable=False),
        sa.Column("scheduled_for", storage.models.UTCDateTime(), nullable=False),
        sa.Column("claimed_at", storage.models.UTCDateTime(), nullable=False),
        sa.Column("late", sa.Boolean(), nullable=False),
        sa.Column("status", sa.String(12), nullable=False),
        sa.Column("slack_ts", sa.String(40), nullable=True),
        sa.Column("posted_at", storage.models.UTCDateTime(), nullable=True),
        sa.Column("chart", sa.String(20), nullable=True),
        sa.Column("chart_error", sa.String(), nullable=True),
        sa.UniqueConstraint("period", "channel", name="uq_digest_period_channel"),
    )
    op.create_index("ix_incident_triggered_at", "incident", ["triggered_at"])
    op.create_index("ix_incident_resolved_at", "incident", ["resolved_at"])
    op.create_index("ix_alert_last_seen_at", "alert", ["last_seen_at"])


def downgrade() -> None:
    op.drop_index("ix_alert_last_seen_at", table_name="alert")
    op.drop_index("ix_incident_resolved_at", table_name="incident")
    op.drop_index("ix_incident_triggered_at", table_name="incident")
    op.drop_table("digest_run")
