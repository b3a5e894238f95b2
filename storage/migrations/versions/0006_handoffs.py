"""Handoffs from AI agents: the queue, claims, decisions and SLA clocks.

Revision ID: 0006_handoffs
Revises: 0005_kill_switch
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import storage.models

revision = "0006_handoffs"
down_revision = "0005_kill_switch"
branch_labels = None
depends_on = None


def upgrade() -> None:
    utc = storage.models.UTCDateTime
    op.create_table(
        "handoff",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("idempotency_key", sa.String(length=200), nullable=False),
        sa.Column("source", sa.String(length=100), nullable=False),
        sa.Column("workflow", sa.String(length=200), nullable=False),
        sa.Column("agent_id", sa.String(length=200), nullable=True),
        sa.Column("agent_version", sa.String(length=100), nullable=True),
        sa.Column("reason", sa.String(length=20), nullable=False),
        sa.Column("confidence", sa.Float(), nullable=True),
        sa.Column("confidence_band", sa.String(length=20), nullable=False),
        sa.Column("tier", sa.String(length=10), nullable=False),
        sa.Column("tier_reason", sa.String(), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("request", sa.JSON(), nullable=False),
        sa.Column("attempted_response", sa.String(), nullable=True),
        sa.Column("error", sa.JSON(), nullable=True),
        sa.Column("suggested_actions", sa.JSON(), nullable=False),
        sa.Column("proposed_action", sa.JSON(), nullable=True),
        sa.Column("context", sa.JSON(), nullable=False),
        sa.Column("ai_context", sa.JSON(), nullable=False),
        sa.Column("callback_url", sa.String(length=2048), nullable=True),
        sa.Column("claimed_by", sa.String(length=100), nullable=True),
        sa.Column("claimed_at", utc(), nullable=True),
        sa.Column("lease_until", utc(), nullable=True),
        sa.Column("decision", sa.String(length=12), nullable=True),
        sa.Column("edited_output", sa.String(), nullable=True),
        sa.Column("reject_reason", sa.String(), nullable=True),
        sa.Column("decided_by", sa.String(length=100), nullable=True),
        sa.Column("decided_at", utc(), nullable=True),
        sa.Column("received_at", utc(), nullable=False),
        sa.Column("updated_at", utc(), nullable=False),
        sa.Column("claim_due_at", utc(), nullable=True),
        sa.Column("decide_due_at", utc(), nullable=True),
        sa.Column("sla_claim_stage", sa.Integer(), nullable=False),
        sa.Column("sla_decide_stage", sa.Integer(), nullable=False),
        sa.Column("sla_claim_breached", sa.Boolean(), nullable=False),
        sa.Column("sla_decide_breached", sa.Boolean(), nullable=False),
        sa.Column("sla_next_at", utc(), nullable=True),
        sa.Column("slack_channel", sa.String(length=40), nullable=True),
        sa.Column("slack_ts", sa.String(length=40), nullable=True),
        sa.Column("jira_key", sa.String(length=50), nullable=True),
        sa.Column("callback_delivered_at", utc(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("idempotency_key"),
    )
    op.create_index("ix_handoff_decided_at", "handoff", ["decided_at"])
    op.create_index("ix_handoff_lease", "handoff", ["status", "lease_until"])
    op.create_index("ix_handoff_open", "handoff", ["status", "received_at"])
    op.create_index("ix_handoff_received_at", "handoff", ["received_at"])
    op.create_index("ix_handoff_sla_next_at", "handoff", ["sla_next_at"])
    op.create_index("ix_handoff_workflow", "handoff", ["workflow"])


def downgrade() -> None:
    for name in (
        "ix_handoff_workflow",
        "ix_handoff_sla_next_at",
        "ix_handoff_received_at",
        "ix_handoff_open",
        "ix_handoff_lease",
        "ix_handoff_decided_at",
    ):
        op.drop_index(name, table_name="handoff")
    op.drop_table("handoff")
