"""Cumulative OTLP streams in the database: states kept, and two writers of one stream count once."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session

from bot.domain.watch.history import minute_of
from bot.domain.watch.otlp import (
    DURATION,
    Point,
    PointKind,
    StreamState,
    Temporality,
    WatchMapping,
    read,
)
from bot.services.watch_metrics import apply
from storage import watch, watch_streams
from storage.db import create_db_engine

pytestmark = pytest.mark.both_backends

NOW = datetime(2026, 11, 23, 10, 0, 30, tzinfo=UTC)
NS = 1_000_000_000
T = int(NOW.timestamp()) * NS


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    engine = create_db_engine(db_url)
    yield engine
    engine.dispose()


def cumulative(count: int, total: float, *, time_ns: int = T) -> Point:
    return Point(
        metric=DURATION,
        kind=PointKind.HISTOGRAM,
        unit="s",
        temporality=Temporality.CUMULATIVE,
        start_ns=T - 600 * NS,
        time_ns=time_ns,
        resource=(("service.name", "support-bot"),),
        count=count,
        total=total,
        bounds=(0.1, 1.0),
        buckets=(count, 0, 0),
        max=0.09,
    )


def runs(engine: Engine) -> int:
    with Session(engine) as session:
        return sum(s.tally.runs for s in watch.slots(session, since=0, until=2**31 - 1))


def test_states_round_trip(engine: Engine) -> None:
    state = StreamState(
        start_ns=T - NS,
        time_ns=T,
        count=3,
        total=0.5,
        bounds=(0.1, 1.0),
        buckets=(1, 2, 0),
        max=0.7,
    )
    with Session(engine) as session:
        assert watch_streams.lock(session, [7, 8], minute=minute_of(NOW)) == {}
        watch_streams.save(session, {7: state})
        session.commit()
    with Session(engine) as session:
        assert watch_streams.lock(session, [7, 8], minute=minute_of(NOW)) == {7: state}
        session.commit()


def test_cumulative_points_across_exports_count_what_they_grew_by(engine: Engine) -> None:
    mapping = WatchMapping()
    for count, offset in ((2, -20), (5, -10), (5, 0)):
        measures = read([cumulative(count, count * 0.05, time_ns=T + offset * NS)], mapping, NOW)
        with Session(engine) as session:
            apply(session, measures.measures, now=NOW)
            session.commit()
    assert runs(engine) == 5


def test_two_writers_of_one_new_stream_count_its_first_point_once(engine: Engine) -> None:
    measures = read([cumulative(4, 0.2)], WatchMapping(), NOW).measures
    later = read([replace(cumulative(6, 0.3), time_ns=T + NS)], WatchMapping(), NOW).measures
    first = Session(engine)
    apply(first, measures, now=NOW)  # holds the stream's row until it commits
    errors: list[BaseException] = []

    def second() -> None:
        try:
            with Session(engine) as session:
                apply(session, measures, now=NOW)
                apply(session, later, now=NOW)
                session.commit()
        except BaseException as exc:  # reported by the test thread
            errors.append(exc)

    thread = threading.Thread(target=second)
    thread.start()
    first.commit()
    first.close()
    thread.join(timeout=30)
    assert not thread.is_alive() and errors == []
    # the first point once (4 runs), then the 2 the later point grew by
    assert runs(engine) == 6


@pytest.mark.parametrize("existing", [False, True], ids=["new", "existing"])
def test_replicas_racing_on_one_stream_count_each_point_once(
    engine: Engine, existing: bool
) -> None:
    # an exporter that retried while its request was still being written, to 4 replicas
    if existing:
        with Session(engine) as session:
            apply(session, read([cumulative(4, 0.2)], WatchMapping(), NOW).measures, now=NOW)
            session.commit()
    point = cumulative(6, 0.3, time_ns=T + NS) if existing else cumulative(4, 0.2)
    measures = read([point], WatchMapping(), NOW).measures
    start = threading.Barrier(4)
    errors: list[BaseException] = []

    def replica() -> None:
        try:
            start.wait(timeout=10)
            with Session(engine) as session:
                apply(session, measures, now=NOW)
                session.commit()
        except BaseException as exc:  # reported by the test thread
            errors.append(exc)

    threads = [threading.Thread(target=replica) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert errors == [] and not any(t.is_alive() for t in threads)
    assert runs(engine) == (6 if existing else 4)
