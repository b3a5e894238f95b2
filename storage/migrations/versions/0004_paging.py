"""Paging: escalation state per incident, on-call overrides, pages sent.

Revision ID: 0004_paging
Revises: 0003_jira
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import storage.models

revision = "0004_paging"
down_revision = "0003_jira"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "escalation",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("incident_id", sa.Integer(), nullable=False),
        sa.Column("policy", sa.String(length=200), nullable=False),
        sa.Column("snapshot", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("run", sa.Integer(), nullable=False),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("round", sa.Integer(), nullable=False),
        sa.Column("next_at", storage.models.UTCDateTime(), nullable=True),
        sa.Column("business_hours_only", sa.Boolean(), nullable=False),
        sa.Column("founder_due_at", storage.models.UTCDateTime(), nullable=True),
        sa.Column("reason", sa.String(), nullable=True),
        sa.Column("created_at", storage.models.UTCDateTime(), nullable=False),
        sa.Column("updated_at", storage.models.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["incident_id"], ["incident.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("incident_id"),
    )
    op.create_index("ix_escalation_next_at", "escalation", ["next_at"], unique=False)
    op.create_index("ix_escalation_founder_due_at", "escalation", ["founder_due_at"], unique=False)
    op.create_table(
        "oncall_override",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("schedule", sa.String(length=200), nullable=True),
        sa.Column("person", sa.String(length=100), nullable=False),
        sa.Column("starts_at", storage.models.UTCDateTime(), nullable=False),
        sa.Column("ends_at", storage.models.UTCDateTime(), nullable=False),
        sa.Column("created_by", sa.String(length=100), nullable=False),
        sa.Column("created_at", storage.models.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_oncall_override_schedule", "oncall_override", ["schedule"], unique=False)
    op.create_index("ix_oncall_override_ends_at", "oncall_override", ["ends_at"], unique=False)
    op.create_table(
        "page",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("incident_id", sa.Integer(), nullable=False),
        sa.Column("idempotency_key", sa.String(length=200), nullable=False),
        sa.Column("reason", sa.String(length=20), nullable=False),
        sa.Column("run", sa.Integer(), nullable=True),
        sa.Column("round", sa.Integer(), nullable=True),
        sa.Column("step", sa.Integer(), nullable=True),
        sa.Column("person", sa.String(length=100), nullable=False),
        sa.Column("channel", sa.String(length=20), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("error", sa.String(), nullable=True),
        sa.Column("created_at", storage.models.UTCDateTime(), nullable=False),
        sa.Column("sent_at", storage.models.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(["incident_id"], ["incident.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("idempotency_key"),
    )
    op.create_index("ix_page_incident_id", "page", ["incident_id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_page_incident_id", table_name="page")
    op.drop_table("page")
    op.drop_index("ix_oncall_override_ends_at", table_name="oncall_override")
    op.drop_index("ix_oncall_override_schedule", table_name="oncall_override")
    op.drop_table("oncall_override")
    op.drop_index("ix_escalation_founder_due_at", table_name="escalation")
    op.drop_index("ix_escalation_next_at", table_name="escalation")
    op.drop_table("escalation")
