"""Tables of the watched history: minute and hour tallies, seen run keys, versions, streams.

Plain SQLAlchemy tables in the models' metadata (SQLModel's; `storage.models` imports this): a tally has one column per histogram bucket so
two writers add to the same row with one upsert (`col = col + excluded.col`), and an empty
bucket is NULL, which costs nothing on disk on either backend.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlmodel import SQLModel

from bot.domain.watch.history import CONFIDENCE_BOUNDS, LATENCY_BOUNDS_MS

__all__ = [
    "ADDED",
    "CONFIDENCE_COLUMNS",
    "LATENCY_COLUMNS",
    "MAXED",
    "hour_table",
    "minute_table",
    "seen_table",
    "stream_table",
    "tally_columns",
    "version_table",
]

LATENCY_COLUMNS = tuple(f"l{i}" for i in range(len(LATENCY_BOUNDS_MS) + 1))
CONFIDENCE_COLUMNS = tuple(f"c{i}" for i in range(len(CONFIDENCE_BOUNDS) + 1))
# columns two tallies add, and the ones they take the larger of
ADDED = (
    "runs", "errors", "refusals", "timeouts", "handoffs", "tokens_in", "tokens_out", "cost_usd",
    "latency_count", "latency_sum_ms", "confidence_count", "confidence_sum",
    *LATENCY_COLUMNS, *CONFIDENCE_COLUMNS,
)  # fmt: skip
MAXED = ("latency_max_ms", "last_at_ms")
_FLOATS = {"cost_usd", "latency_sum_ms", "confidence_sum", "latency_max_ms"}
_BIG = {"tokens_in", "tokens_out", "last_at_ms"}
metadata = SQLModel.metadata
# an integer primary key that is SQLite's rowid (no second copy of the key on disk)
_KEY = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def tally_columns() -> list[sa.Column[Any]]:
    """Return the columns of a tally, every one nullable (NULL is zero)."""
    columns: list[sa.Column[Any]] = []
    for name in (*ADDED, *MAXED):
        kind: sa.types.TypeEngine[Any]
        if name in _FLOATS:
            kind = sa.Float()
        elif name in _BIG:
            kind = sa.BigInteger()
        else:
            kind = sa.Integer()
        columns.append(sa.Column(name, kind, nullable=True))
    return columns


def _tally_table(name: str, *extra: sa.Column[Any]) -> sa.Table:
    return sa.Table(
        name,
        metadata,
        # whole minutes since the epoch (UTC); an hour row is keyed by its first minute. The
        # minute leads the key: every read and every prune is a range of time
        sa.Column("minute", sa.Integer(), primary_key=True),
        sa.Column("workflow", sa.String(200), primary_key=True),
        *tally_columns(),
        *extra,
    )


# the latest few latencies of the minute: fixed-width "<ms into the minute:5><latency ms:7>"
minute_table = _tally_table("watch_minute", sa.Column("recent", sa.String(120), nullable=True))
hour_table = _tally_table("watch_hour")
# what was already counted: runs by (workflow, run_id), OTLP delta points by their stream and time
seen_table = sa.Table(
    "watch_seen",
    metadata,
    sa.Column("key", _KEY, primary_key=True, autoincrement=False),
    sa.Column("minute", sa.Integer(), nullable=False, index=True),
)
version_table = sa.Table(
    "watch_version",
    metadata,
    sa.Column("workflow", sa.String(200), primary_key=True),
    sa.Column("kind", sa.String(10), primary_key=True),
    sa.Column("value", sa.String(200), primary_key=True),
    sa.Column("first_at_ms", sa.BigInteger(), nullable=False),
    sa.Column("last_at_ms", sa.BigInteger(), nullable=False),
    # the input that first reported the value (runs, otlp, alert): set on insert, never changed
    sa.Column("source", sa.String(10), nullable=False, server_default="runs"),
    # when the change was journalled into the workflow's open incidents; NULL while it is
    # news (an error text is never news: it is inserted journalled)
    sa.Column("journalled_at_ms", sa.BigInteger(), nullable=True),
    sa.Index(
        "ix_watch_version_pending",
        "workflow",
        postgresql_where=sa.text("journalled_at_ms IS NULL"),
        sqlite_where=sa.text("journalled_at_ms IS NULL"),
    ),
)
# the last cumulative OTLP point of each stream, to turn the next one into a delta
stream_table = sa.Table(
    "watch_stream",
    metadata,
    sa.Column("key", _KEY, primary_key=True, autoincrement=False),
    sa.Column("start_ns", sa.BigInteger(), nullable=False),
    sa.Column("time_ns", sa.BigInteger(), nullable=False),
    sa.Column("count", sa.BigInteger(), nullable=False),
    sa.Column("total", sa.Float(), nullable=False),
    sa.Column("buckets", sa.JSON(), nullable=True),
    sa.Column("max", sa.Float(), nullable=True),
    # when the stream last moved, so streams that went away can be pruned
    sa.Column("minute", sa.Integer(), nullable=False, index=True),
)
