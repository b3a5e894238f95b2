"""The watched history: minute and hour tallies, seen run keys, versions, OTLP streams.

Revision ID: 0008_watch
Revises: 0007_digest_runs
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from storage.watch_tables import tally_columns

revision = "0008_watch"
down_revision = "0007_digest_runs"
branch_labels = None
depends_on = None

_KEY = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    for name, extra in (
        ("watch_minute", [sa.Column("recent", sa.String(120), nullable=True)]),
        ("watch_hour", []),
    ):
        op.create_table(
            name,
            sa.Column("minute", sa.Integer(), primary_key=True),
            sa.Column("workflow", sa.String(200), primary_key=True),
            *tally_columns(),
            *extra,
        )
    op.create_table(
        "watch_seen",
        sa.Column("key", _KEY, primary_key=True, autoincrement=False),
        sa.Column("minute", sa.Integer(), nullable=False),
    )
    op.create_index("ix_watch_seen_minute", "watch_seen", ["minute"])
    op.create_table(
        "watch_version",
        sa.Column("workflow", sa.String(200), primary_key=True),
        sa.Column("kind", sa.String(10), primary_key=True),
        sa.Column("value", sa.String(200), primary_key=True),
        sa.Column("first_at_ms", sa.BigInteger(), nullable=False),
        sa.Column("last_at_ms", sa.BigInteger(), nullable=False),
    )
    op.create_table(
        "watch_stream",
        sa.Column("key", _KEY, primary_key=True, autoincrement=False),
        sa.Column("start_ns", sa.BigInteger(), nullable=False),
        sa.Column("time_ns", sa.BigInteger(), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.Column("total", sa.Float(), nullable=False),
        sa.Column("buckets", sa.JSON(), nullable=True),
        sa.Column("max", sa.Float(), nullable=True),
        sa.Column("minute", sa.Integer(), nullable=False),
    )
    op.create_index("ix_watch_stream_minute", "watch_stream", ["minute"])


def downgrade() -> None:
    op.drop_index("ix_watch_stream_minute", table_name="watch_stream")
    op.drop_table("watch_stream")
    op.drop_table("watch_version")
    op.drop_index("ix_watch_seen_minute", table_name="watch_seen")
    op.drop_table("watch_seen")
    op.drop_table("watch_hour")
    op.drop_table("watch_minute")
