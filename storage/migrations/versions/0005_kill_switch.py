"""Kill switches per workflow and their audit trail.

Revision ID: 0005_kill_switch
Revises: 0004_paging
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import storage.models

revision = "0005_kill_switch"
down_revision = "0004_paging"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "workflow_switch",
        sa.Column("workflow", sa.String(200), primary_key=True),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("reason", sa.String(), nullable=True),
        sa.Column("changed_by", sa.String(100), nullable=False),
        sa.Column("changed_at", storage.models.UTCDateTime(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
    )
    op.create_table(
        "switch_audit",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("workflow", sa.String(200), nullable=False),
        sa.Column("old_enabled", sa.Boolean(), nullable=False),
        sa.Column("new_enabled", sa.Boolean(), nullable=False),
        sa.Column("actor", sa.String(100), nullable=False),
        sa.Column("reason", sa.String(), nullable=True),
        sa.Column("via", sa.String(20), nullable=False),
        sa.Column("incident_id", sa.Integer(), nullable=True),
        sa.Column("at", storage.models.UTCDateTime(), nullable=False),
    )
    op.create_index("ix_switch_audit_workflow", "switch_audit", ["workflow"])


def downgrade() -> None:
    op.drop_index("ix_switch_audit_workflow", table_name="switch_audit")
    op.drop_table("switch_audit")
    op.drop_table("workflow_switch")
