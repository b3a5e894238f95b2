"""The watched history in the database: claim what is new, add tallies, read them, prune.

Every write is an insert-or-add upsert (never read-modify-write), so two replicas writing the
same workflow and minute lose nothing; rows are written in key order so two transactions that
touch the same rows cannot deadlock.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session

from bot.domain.watch.changes import CHANGE_KINDS, Sighting, derive, within
from bot.domain.watch.history import (
    RECENT,
    VERSION_CHARS,
    Change,
    ChangeSource,
    Run,
    Slot,
    Tally,
    Version,
    VersionKind,
    epoch_ms,
    fold,
    hour_of,
    minute_of,
    run_key,
)
from bot.domain.watch.policy import Retention
from storage.watch_tables import (
    ADDED,
    CONFIDENCE_COLUMNS,
    LATENCY_COLUMNS,
    MAXED,
    hour_table,
    minute_table,
    seen_table,
    stream_table,
    version_table,
)

__all__ = [
    "RecordedRuns",
    "add_tallies",
    "changes",
    "claim",
    "claim_unjournalled",
    "first_minute",
    "minute_counts",
    "prune",
    "reach",
    "recent_latencies",
    "record_batches",
    "record_runs",
    "saw_versions",
    "slots",
    "sums",
    "versions",
    "workflows_seen",
]

_RECENT_WIDTH = 12
_RECENT_CHARS = RECENT * _RECENT_WIDTH


def _insert(session: Session, table: sa.Table) -> Any:
    if session.get_bind().dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


def _dialect(session: Session) -> str:
    return session.get_bind().dialect.name


# keys per INSERT of claim: SQLite binds at most 32,766 values
_CLAIM_ROWS = 2000


# -- what is new --------------------------------------------------------------------------------


def claim(session: Session, keys: Mapping[int, int]) -> set[int]:
    """Record keys (key -> minute) not seen before; return the ones that were new.

    A key another transaction is inserting at the same moment waits for it, then counts as seen.
    """
    if not keys:
        return set()
    dialect = session.get_bind().dialect
    mark = "?" if dialect.paramstyle == "qmark" else "%s"
    quote = dialect.identifier_preparer.quote
    head = f"INSERT INTO {quote(seen_table.name)} ({quote('key')}, {quote('minute')}) VALUES "
    tail = f" ON CONFLICT ({quote('key')}) DO NOTHING RETURNING {quote('key')}"
    ordered = sorted(keys.items())
    connection = session.connection()
    new: set[int] = set()
    # plain SQL to the driver: per key, two values bound and nothing else done
    for start in range(0, len(ordered), _CLAIM_ROWS):
        chunk = ordered[start : start + _CLAIM_ROWS]
        sql = head + ",".join([f"({mark}, {mark})"] * len(chunk)) + tail
        values = tuple(value for pair in chunk for value in pair)
        new.update(key for (key,) in connection.exec_driver_sql(sql, values))
    return new


@dataclass(frozen=True)
class RecordedRuns:
    """What recording some runs did: per run, whether it was new (else a repeat)."""

    new: list[bool]

    @property
    def accepted(self) -> int:
        return sum(self.new)

    @property
    def duplicates(self) -> int:
        return len(self.new) - self.accepted


def record_runs(
    session: Session, runs: Sequence[Run], *, source: ChangeSource = ChangeSource.RUNS
) -> RecordedRuns:
    """Count the runs not counted before (by workflow and run_id) into the history."""
    keys = [run_key(run.workflow, run.run_id) for run in runs]
    first: dict[int, int] = {}
    for index, key in enumerate(keys):
        first.setdefault(key, index)
    claimed = claim(session, {key: minute_of(runs[index].at) for key, index in first.items()})
    new = [key in claimed and first[key] == index for index, key in enumerate(keys)]
    add_tallies(
        session, fold(run for run, fresh in zip(runs, new, strict=True) if fresh), source=source
    )
    return RecordedRuns(new)


def record_batches(session: Session, batches: Sequence[Sequence[Run]]) -> list[RecordedRuns]:
    """Record several requests' runs in one claim and one set of upserts; a result per request.

    A run repeated across them counts once, in the first request that has it.
    """
    recorded = record_runs(
        session, [run for runs in batches for run in runs], source=ChangeSource.RUNS
    ).new
    results: list[RecordedRuns] = []
    start = 0
    for runs in batches:
        results.append(RecordedRuns(recorded[start : start + len(runs)]))
        start += len(runs)
    return results


# -- adding tallies -----------------------------------------------------------------------------


def _recent_text(minute: int, tally: Tally) -> str | None:
    if not tally.recent:
        return None
    base = minute * 60_000
    return "".join(
        f"{min(max(at_ms - base, 0), 59_999):05d}{min(round(latency), 9_999_999):07d}"
        for at_ms, latency in tally.recent
    )


# the added columns that are a tally's own fields (the rest are its histograms' buckets)
_FIELDS = tuple(name for name in ADDED if name not in (*LATENCY_COLUMNS, *CONFIDENCE_COLUMNS))


def _row(workflow: str, minute: int, tally: Tally, *, recent: bool) -> dict[str, Any]:
    row: dict[str, Any] = {"workflow": workflow, "minute": minute}
    for name in _FIELDS:
        row[name] = getattr(tally, name) or None
    row.update(
        zip(LATENCY_COLUMNS, [count or None for count in tally.latency_buckets], strict=True)
    )
    row.update(
        zip(CONFIDENCE_COLUMNS, [count or None for count in tally.confidence_buckets], strict=True)
    )
    row["latency_max_ms"] = tally.latency_max_ms
    row["last_at_ms"] = tally.last_at_ms
    if recent:
        row["recent"] = _recent_text(minute, tally)
    return row


def _greater(session: Session, a: Any, b: Any) -> Any:
    if _dialect(session) == "postgresql":
        return sa.func.greatest(a, b)  # ignores NULL
    return sa.func.max(sa.func.coalesce(a, b), sa.func.coalesce(b, a))


def _lesser(session: Session, a: Any, b: Any) -> Any:
    if _dialect(session) == "postgresql":
        return sa.func.least(a, b)
    return sa.func.min(sa.func.coalesce(a, b), sa.func.coalesce(b, a))


# the upsert of each (dialect, table), built once: SQLAlchemy then finds its compiled form in
# its cache without walking a fresh statement of some 50 columns' expressions per call
_UPSERTS: dict[tuple[str, str], Any] = {}
_ZERO: sa.ColumnClause[Any] = sa.literal_column("0")


def _upsert(session: Session, table: sa.Table) -> Any:
    found = _UPSERTS.get((_dialect(session), table.name))
    if found is not None:
        return found
    statement = _insert(session, table)
    new = statement.excluded
    changes: dict[str, Any] = {
        name: sa.func.nullif(
            sa.func.coalesce(table.c[name], _ZERO) + sa.func.coalesce(new[name], _ZERO), _ZERO
        )
        for name in ADDED
    }
    for name in MAXED:
        changes[name] = _greater(session, table.c[name], new[name])
    if "recent" in table.c:
        empty: sa.ColumnClause[Any] = sa.literal_column("''")
        joined = sa.func.coalesce(table.c.recent, empty) + sa.func.coalesce(new.recent, empty)
        changes["recent"] = (
            sa.func.right(joined, sa.literal_column(str(_RECENT_CHARS)))
            if _dialect(session) == "postgresql"
            else sa.func.substr(joined, sa.literal_column(str(-_RECENT_CHARS)))
        )
    found = statement.on_conflict_do_update(index_elements=["minute", "workflow"], set_=changes)
    _UPSERTS[(_dialect(session), table.name)] = found
    return found


# the upserts' SQL and, for a driver that binds by position, the order of its values
_DRIVER_SQL: dict[tuple[str, str], tuple[str, tuple[str, ...] | None]] = {}


def _upsert_sql(session: Session, table: sa.Table) -> tuple[str, tuple[str, ...] | None]:
    dialect = session.get_bind().dialect
    found = _DRIVER_SQL.get((dialect.name, table.name))
    if found is None:
        compiled = _upsert(session, table).compile(dialect=dialect)
        names = tuple(compiled.positiontup or ()) if compiled.positional else None
        found = _DRIVER_SQL[(dialect.name, table.name)] = (compiled.string, names)
    return found


def _upsert_tallies(session: Session, table: sa.Table, rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    sql, names = _upsert_sql(session, table)
    # the driver's executemany with the rows as they are: SQLAlchemy would process each of the
    # some 50 values of every row, for types that need no processing
    params: Sequence[Any] = (
        rows if names is None else [tuple(row[name] for name in names) for row in rows]
    )
    session.connection().exec_driver_sql(sql, params)


def add_tallies(
    session: Session,
    tallies: Mapping[tuple[str, int], Tally],
    *,
    source: ChangeSource = ChangeSource.RUNS,
) -> None:
    """Add tallies by (workflow, minute) to the minute and hour history and the versions seen.

    `source` is the input the tallies come from: a version seen for the first time keeps it.
    """
    if not tallies:
        return
    minutes = sorted(tallies.items(), key=lambda item: (item[0][1], item[0][0]))
    _upsert_tallies(
        session,
        minute_table,
        [_row(workflow, minute, tally, recent=True) for (workflow, minute), tally in minutes],
    )
    hours: dict[tuple[int, str], Tally] = {}
    seen: dict[tuple[str, str, str], list[int]] = {}
    for (workflow, minute), tally in minutes:
        hour = hours.get((hour_of(minute), workflow))
        if hour is None:
            hour = hours[(hour_of(minute), workflow)] = Tally()
        hour.merge(tally)
        for (kind, value), (first, last) in tally.versions.items():
            span = seen.setdefault((workflow, kind.value, value), [first, last])
            span[0], span[1] = min(span[0], first), max(span[1], last)
    _upsert_tallies(
        session,
        hour_table,
        [
            _row(workflow, hour, tally, recent=False)
            for (hour, workflow), tally in sorted(hours.items())
        ],
    )
    _upsert_versions(session, seen, source)


_ERROR = VersionKind.ERROR.value


def _upsert_versions(
    session: Session, seen: Mapping[tuple[str, str, str], Sequence[int]], source: ChangeSource
) -> None:
    # one statement, as before the change log: the source and the journal mark ride on the
    # insert (an error text is never news, so it is inserted journalled) and an update of a
    # version already known leaves both alone
    if not seen:
        return
    rows = [
        {
            "workflow": w,
            "kind": k,
            "value": v,
            "first_at_ms": span[0],
            "last_at_ms": span[1],
            "source": source.value,
            "journalled_at_ms": span[0] if k == _ERROR else None,
        }
        for (w, k, v), span in sorted(seen.items())
    ]
    statement = _insert(session, version_table)
    new = statement.excluded
    session.execute(
        statement.on_conflict_do_update(
            index_elements=["workflow", "kind", "value"],
            set_={
                "first_at_ms": _lesser(session, version_table.c.first_at_ms, new.first_at_ms),
                "last_at_ms": _greater(session, version_table.c.last_at_ms, new.last_at_ms),
            },
        ),
        rows,
    )


def saw_versions(
    session: Session,
    seen: Iterable[tuple[str, VersionKind, str, datetime]],
    *,
    source: ChangeSource,
) -> None:
    """Note models or prompt versions (workflow, kind, value, at) reported outside the tallies,
    such as an alert's AI context, in the versions seen; nothing else of the history moves."""
    spans: dict[tuple[str, str, str], list[int]] = {}
    for workflow, kind, value, at in seen:
        if not value:
            continue
        at_ms = epoch_ms(at)
        span = spans.setdefault((workflow, kind.value, value[:VERSION_CHARS]), [at_ms, at_ms])
        span[0], span[1] = min(span[0], at_ms), max(span[1], at_ms)
    _upsert_versions(session, spans, source)


# -- reading ------------------------------------------------------------------------------------


class _Columns:
    """Where a result's columns are, found once per query: a row is then read by position
    (looking some fifty names up in every row's mapping cost more than the query)."""

    def __init__(self, keys: Sequence[str]) -> None:
        at = {name: index for index, name in enumerate(keys)}
        self.fields = operator.itemgetter(
            *(
                at[name]
                for name in (
                    "runs", "errors", "refusals", "timeouts", "handoffs", "tokens_in",
                    "tokens_out", "cost_usd", "latency_count", "latency_sum_ms",
                    "confidence_count", "confidence_sum", "latency_max_ms", "last_at_ms",
                )
            )
        )  # fmt: skip
        # a result without the histograms' columns (`minute_counts`) leaves them empty
        self.histograms = all(name in at for name in (*LATENCY_COLUMNS, *CONFIDENCE_COLUMNS))
        if self.histograms:
            self.latency = operator.itemgetter(*(at[name] for name in LATENCY_COLUMNS))
            self.confidence = operator.itemgetter(*(at[name] for name in CONFIDENCE_COLUMNS))

    def tally(self, row: Sequence[Any], minute: int, recent: str | None) -> Tally:
        (
            runs, errors, refusals, timeouts, handoffs, t_in, t_out, cost, l_count, l_sum,
            c_count, c_sum, l_max, last,
        ) = self.fields(row)  # fmt: skip
        tally = Tally(
            runs=runs or 0,
            errors=errors or 0,
            refusals=refusals or 0,
            timeouts=timeouts or 0,
            handoffs=handoffs or 0,
            tokens_in=t_in or 0,
            tokens_out=t_out or 0,
            cost_usd=cost or 0.0,
            latency_count=l_count or 0,
            latency_sum_ms=l_sum or 0.0,
            latency_max_ms=l_max,
            latency_buckets=[count or 0 for count in self.latency(row)]
            if self.histograms
            else [0] * len(LATENCY_COLUMNS),
            confidence_count=c_count or 0,
            confidence_sum=c_sum or 0.0,
            confidence_buckets=[count or 0 for count in self.confidence(row)]
            if self.histograms
            else [0] * len(CONFIDENCE_COLUMNS),
            last_at_ms=last,
        )
        if recent:
            tally.recent = sorted(_recent_entries(minute, recent))[-RECENT:]
        return tally


def _recent_entries(minute: int, recent: str) -> list[tuple[int, float]]:
    base = minute * 60_000
    return [
        (base + int(recent[i : i + 5]), float(int(recent[i + 5 : i + _RECENT_WIDTH])))
        for i in range(0, len(recent) - _RECENT_WIDTH + 1, _RECENT_WIDTH)
    ]


def slots(
    session: Session,
    *,
    since: int,
    until: int,
    hourly: bool = False,
    workflows: Collection[str] | None = None,
    recent: bool = True,
) -> list[Slot]:
    """Return the tallies of minutes (or hours) `since` <= minute < `until`, in time order.

    An hour is keyed by its first minute; `since` and `until` are minutes either way.
    `recent=False` leaves the minutes' latest latencies unread (they cost more than the rest).
    """
    table = hour_table if hourly else minute_table
    query = sa.select(table).where(table.c.minute >= since, table.c.minute < until)
    if workflows is not None:
        query = query.where(table.c.workflow.in_(sorted(workflows)))
    query = query.order_by(table.c.minute, table.c.workflow)
    found = []
    kept = recent and not hourly
    result = session.execute(query)
    columns = _Columns(list(result.keys()))
    at_recent = list(result.keys()).index("recent") if kept else -1
    for row in result:
        latest = row[at_recent] if kept else None
        found.append(
            Slot(
                row.workflow,
                row.minute,
                60 if hourly else 1,
                columns.tally(row, row.minute, latest),
            )
        )
    return found


# what a minute's counts are, without its histograms and latest latencies
# a minute's scalar columns: its counts and sums, without the histograms' buckets
_COUNTS = (
    "runs", "errors", "refusals", "timeouts", "handoffs", "tokens_in", "tokens_out", "cost_usd",
    "latency_count", "latency_sum_ms", "confidence_count", "confidence_sum", "latency_max_ms",
    "last_at_ms",
)  # fmt: skip


def minute_counts(
    session: Session, *, since: int, until: int, workflows: Collection[str] | None = None
) -> list[Slot]:
    """Return the counts and sums of minutes `since` <= minute < `until`, in time order: the
    tallies' histograms and latest latencies are left empty, so many minutes are read for the
    price of few."""
    table = minute_table
    query = sa.select(table.c.workflow, table.c.minute, *(table.c[n] for n in _COUNTS)).where(
        table.c.minute >= since, table.c.minute < until
    )
    if workflows is not None:
        query = query.where(table.c.workflow.in_(sorted(workflows)))
    result = session.execute(query.order_by(table.c.minute, table.c.workflow))
    columns = _Columns(list(result.keys()))
    return [
        Slot(row.workflow, row.minute, 1, columns.tally(row, row.minute, None)) for row in result
    ]


def _summed(column: sa.Column[Any]) -> Any:
    # PostgreSQL's sum of a bigint is a numeric (a Decimal in Python): cast back to an integer
    kind = sa.BigInteger() if isinstance(column.type, sa.Integer) else sa.Float()
    return sa.cast(sa.func.sum(column), kind)


@functools.cache
def _sum_columns(table: sa.Table) -> tuple[Any, ...]:
    # built once: constructing some fifty expressions per span costs more than the query
    return (
        *(_summed(table.c[name]).label(name) for name in ADDED),
        *(sa.func.max(table.c[name]).label(name) for name in MAXED),
    )


def sums(
    session: Session,
    parts: Collection[tuple[int, int, bool]],
    workflows: Collection[str] | None = None,
) -> dict[tuple[str, int, int, bool], Tally]:
    """Return each workflow's totals over some spans: (workflow, since, until, hourly) -> tally.

    A part (since, until, hourly) adds up the minutes (or the hours, by their first minute)
    `since` <= minute < `until`; the database does the adding, one query per table, so a week
    of hours and the edges of a day cost a few rows per workflow. A workflow with nothing in a
    part has no entry for it. The recent latencies are not summed (see `recent_latencies`).
    """
    found: dict[tuple[str, int, int, bool], Tally] = {}
    ordered = sorted(set(parts))
    for hourly in (False, True):
        mine = [part for part in ordered if part[2] is hourly]
        if not mine:
            continue
        table = hour_table if hourly else minute_table
        selects = []
        for index, (since, until, _hourly) in enumerate(mine):
            query = sa.select(
                table.c.workflow, sa.literal(index).label("part"), *_sum_columns(table)
            ).where(table.c.minute >= since, table.c.minute < until)
            if workflows is not None:
                query = query.where(table.c.workflow.in_(sorted(workflows)))
            selects.append(query.group_by(table.c.workflow))
        result = session.execute(sa.union_all(*selects))
        columns = _Columns(list(result.keys()))
        for row in result:
            since, until, _hourly = mine[row.part]
            found[(row.workflow, since, until, hourly)] = columns.tally(row, since, None)
    return found


def recent_latencies(
    session: Session,
    *,
    since: int,
    until: int,
    count: int = 3,
    workflows: Collection[str] | None = None,
) -> dict[str, list[tuple[int, float]]]:
    """Return each workflow's latest `count` latencies kept in minutes since <= minute < until.

    (epoch ms, latency ms) pairs, oldest first. Only the latest `count` minutes with latencies
    are read (each keeps at least one), ranked by the database.
    """
    query = sa.select(
        minute_table.c.workflow,
        minute_table.c.minute,
        minute_table.c.recent,
        sa.func.row_number()
        .over(partition_by=minute_table.c.workflow, order_by=minute_table.c.minute.desc())
        .label("rank"),
    ).where(
        minute_table.c.minute >= since,
        minute_table.c.minute < until,
        minute_table.c.recent.is_not(None),
    )
    if workflows is not None:
        query = query.where(minute_table.c.workflow.in_(sorted(workflows)))
    ranked = query.subquery()
    latest = sa.select(ranked.c.workflow, ranked.c.minute, ranked.c.recent).where(
        ranked.c.rank <= count
    )
    found: dict[str, list[tuple[int, float]]] = {}
    for workflow, minute, recent in session.execute(latest):
        found.setdefault(workflow, []).extend(_recent_entries(minute, recent))
    for workflow, entries in found.items():
        found[workflow] = sorted(entries)[-count:]
    return found


def _instant(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def versions(
    session: Session,
    workflows: Collection[str] | None = None,
    kinds: Collection[VersionKind] | None = None,
) -> list[Version]:
    """Return the models, prompt versions and error texts seen, oldest first-seen first."""
    query = sa.select(version_table)
    if workflows is not None:
        query = query.where(version_table.c.workflow.in_(sorted(workflows)))
    if kinds is not None:
        query = query.where(version_table.c.kind.in_(sorted(k.value for k in kinds)))
    query = query.order_by(version_table.c.first_at_ms, version_table.c.value)
    return [
        Version(
            row.workflow,
            VersionKind(row.kind),
            row.value,
            _instant(row.first_at_ms),
            _instant(row.last_at_ms),
        )
        for row in session.execute(query)
    ]


def _sightings(session: Session, workflows: Collection[str] | None) -> list[Sighting]:
    query = sa.select(version_table).where(
        version_table.c.kind.in_(sorted(k.value for k in CHANGE_KINDS))
    )
    if workflows is not None:
        query = query.where(version_table.c.workflow.in_(sorted(workflows)))
    return [
        Sighting(
            row.workflow,
            VersionKind(row.kind),
            row.value,
            _instant(row.first_at_ms),
            _instant(row.last_at_ms),
            ChangeSource(row.source),
        )
        for row in session.execute(query)
    ]


def changes(
    session: Session,
    *,
    workflows: Collection[str] | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> list[Change]:
    """Return the workflows' changes of model or prompt version with since <= at < until,
    oldest first (each one's `before` is read from all the versions kept, not just the span's).
    """
    return within(derive(_sightings(session, workflows)), since=since, until=until)


def claim_unjournalled(session: Session, *, now: datetime) -> list[Change]:
    """Mark the changes not yet journalled as journalled at `now`; return them, oldest first.

    The pending rows are locked in key order, skipping those another transaction holds (a
    replica claiming them, or a writer that has just inserted them: they are claimed at a later
    tick), so the claim neither waits on nor deadlocks with the writers' upserts; the update
    checks again that each row is pending, so of two replicas claiming at once each change is
    handed out once. The caller journals what it got in the same transaction.
    """
    table = version_table
    pending = table.c.journalled_at_ms.is_(None)
    keys = session.execute(
        sa.select(table.c.workflow, table.c.kind, table.c.value)
        .where(pending, table.c.kind.in_(sorted(k.value for k in CHANGE_KINDS)))
        .order_by(table.c.workflow, table.c.kind, table.c.value)
        .with_for_update(skip_locked=True)
    ).all()
    if not keys:
        return []
    claimed = session.execute(
        sa.update(table)
        .where(
            pending,
            sa.tuple_(table.c.workflow, table.c.kind, table.c.value).in_(
                [tuple(key) for key in keys]
            ),
        )
        .values(journalled_at_ms=epoch_ms(now))
        .returning(table.c.workflow, table.c.kind, table.c.value)
    ).all()
    if not claimed:
        return []
    mine = {(row.workflow, row.kind, row.value) for row in claimed}
    found = changes(session, workflows={row.workflow for row in claimed})
    return [c for c in found if (c.workflow, c.kind.value, c.after) in mine]


def workflows_seen(session: Session, since: int) -> list[str]:
    """Return the workflows with history in hours starting at or after minute `since`."""
    query = (
        sa.select(hour_table.c.workflow)
        .where(hour_table.c.minute >= hour_of(since))
        .distinct()
        .order_by(hour_table.c.workflow)
    )
    return list(session.execute(query).scalars())


def first_minute(session: Session, workflows: Collection[str] | None = None) -> dict[str, int]:
    """Return, per workflow, the first minute of its hourly history (how long it has been seen)."""
    query = sa.select(hour_table.c.workflow, sa.func.min(hour_table.c.minute)).group_by(
        hour_table.c.workflow
    )
    if workflows is not None:
        query = query.where(hour_table.c.workflow.in_(sorted(workflows)))
    return {workflow: minute for workflow, minute in session.execute(query)}


def reach(
    session: Session, workflows: Collection[str] | None = None
) -> dict[str, tuple[int, int | None]]:
    """Return, per workflow, the first minute of its hourly history and its latest run (epoch ms).

    One pass over the hourly history: `first_minute` and the time of the last run together.
    """
    query = sa.select(
        hour_table.c.workflow,
        sa.func.min(hour_table.c.minute),
        sa.func.max(hour_table.c.last_at_ms),
    ).group_by(hour_table.c.workflow)
    if workflows is not None:
        query = query.where(hour_table.c.workflow.in_(sorted(workflows)))
    return {workflow: (first, last) for workflow, first, last in session.execute(query)}


# -- pruning ------------------------------------------------------------------------------------


def prune(session: Session, *, now: datetime, retention: Retention) -> int:
    """Delete history older than the retention; return how many rows went."""
    now_minute = minute_of(now)

    def cutoff(keep: timedelta) -> int:
        return now_minute - int(keep.total_seconds() // 60)

    minutes, hours = cutoff(retention.minutes), cutoff(retention.hours)
    gone = 0
    for table, before in (
        (minute_table, minutes),
        (seen_table, cutoff(retention.ids)),
        (stream_table, minutes),
        (hour_table, hours),
    ):
        result = session.execute(sa.delete(table).where(table.c.minute < before))
        gone += getattr(result, "rowcount", 0) or 0
    result = session.execute(
        sa.delete(version_table).where(version_table.c.last_at_ms < hours * 60_000)
    )
    gone += getattr(result, "rowcount", 0) or 0
    # the latest latencies of old minutes; a bounded range, so no tick scans the whole table
    recent = cutoff(retention.recent_latencies)
    session.execute(
        sa.update(minute_table)
        .where(
            minute_table.c.minute >= recent - 7 * 1440,
            minute_table.c.minute < recent,
            minute_table.c.recent.is_not(None),
        )
        .values(recent=None)
    )
    return gone
