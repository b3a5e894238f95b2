"""The last cumulative OTLP point of each stream, locked while a delta is computed against it.

Two replicas that receive points of the same stream must not both take the stream's previous
point as their base: `lock` first makes sure a row exists for every key (an insert that waits
for another transaction inserting the same key), then reads the rows `FOR UPDATE` on
PostgreSQL, so the second replica waits for the first to commit and sees its state. SQLite has
one writer, which is the same guarantee.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session

from bot.domain.watch.otlp import StreamState
from storage.watch_tables import stream_table

__all__ = ["lock", "save"]

# a row made only to be locked: no point of the stream has been counted yet
_NO_POINT = -1
_CHUNK = 1000
# every locked stream's new state, in one statement run for many rows
_SAVE = (
    sa.update(stream_table)
    .where(stream_table.c.key == sa.bindparam("k"))
    .values(
        start_ns=sa.bindparam("start_ns"),
        time_ns=sa.bindparam("time_ns"),
        count=sa.bindparam("count"),
        total=sa.bindparam("total"),
        buckets=sa.bindparam("buckets", type_=stream_table.c.buckets.type),
        max=sa.bindparam("max"),
        minute=sa.bindparam("minute"),
    )
)


def _insert(session: Session) -> Any:
    if session.get_bind().dialect.name == "postgresql":
        return postgresql.insert(stream_table)
    return sqlite.insert(stream_table)


def _buckets(state: StreamState) -> dict[str, list[Any]] | None:
    if not state.bounds and not state.buckets:
        return None
    return {"bounds": list(state.bounds), "counts": list(state.buckets)}


def _state(row: Any) -> StreamState:
    buckets = row.buckets or {}
    return StreamState(
        start_ns=row.start_ns,
        time_ns=row.time_ns,
        count=row.count,
        total=row.total,
        bounds=tuple(float(b) for b in buckets.get("bounds", ())),
        buckets=tuple(int(c) for c in buckets.get("counts", ())),
        max=row.max,
    )


def lock(session: Session, keys: Collection[int], *, minute: int) -> dict[int, StreamState]:
    """Lock the streams `keys` for this transaction; return the states of those that have one."""
    ordered = sorted(set(keys))
    if not ordered:
        return {}
    postgres = session.get_bind().dialect.name == "postgresql"
    # one statement run for many rows: compiled once for the process, not once per export
    session.execute(
        _insert(session).on_conflict_do_nothing(index_elements=["key"]),
        [
            {"key": key, "start_ns": 0, "time_ns": _NO_POINT, "count": 0, "total": 0.0}
            | {"minute": minute}
            for key in ordered
        ],
    )
    states: dict[int, StreamState] = {}
    for start in range(0, len(ordered), _CHUNK):
        query = (
            sa.select(stream_table)
            .where(stream_table.c.key.in_(ordered[start : start + _CHUNK]))
            .order_by(stream_table.c.key)
        )
        if postgres:
            query = query.with_for_update()
        for row in session.execute(query):
            if row.time_ns != _NO_POINT:
                states[row.key] = _state(row)
    return states


def save(session: Session, states: Mapping[int, StreamState]) -> None:
    """Store the streams' latest states (the streams were locked by `lock`)."""
    if not states:
        return
    session.execute(
        _SAVE,
        [
            {
                "k": key,
                "start_ns": state.start_ns,
                "time_ns": state.time_ns,
                "count": state.count,
                "total": state.total,
                "buckets": _buckets(state),
                "max": state.max,
                # the minute the stream last moved: a stream that stopped is pruned with its
                # history
                "minute": state.time_ns // 60_000_000_000,
            }
            for key, state in sorted(states.items())
        ],
    )
