"""The watched history in the database: new runs counted once, tallies added, read back, pruned."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session

from bot.domain.watch.history import Run, RunStatus, Tally, VersionKind, minute_of
from bot.domain.watch.policy import Retention
from storage import watch
from storage.db import create_db_engine
from storage.watch_tables import hour_table, minute_table, seen_table

pytestmark = pytest.mark.both_backends

T0 = datetime(2026, 11, 2, 10, 0, tzinfo=UTC)


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    engine = create_db_engine(db_url)
    yield engine
    engine.dispose()


def run(run_id: str, *, at: datetime = T0, workflow: str = "support-bot", **kw: object) -> Run:
    return Run(workflow=workflow, run_id=run_id, at=at, **kw)  # type: ignore[arg-type]


def test_runs_are_counted_once_by_workflow_and_run_id(engine: Engine) -> None:
    first = [
        run("a", latency_ms=120, tokens_in=100, tokens_out=40, cost_usd=0.01, model="m1"),
        run("b", status=RunStatus.ERROR, latency_ms=900, error="upstream 500"),
        run("b", status=RunStatus.OK),  # the same run twice in one batch: the first counts
        run("a", workflow="billing"),  # the same id in another workflow is another run
    ]
    with Session(engine) as session:
        assert watch.record_runs(session, first).new == [True, True, False, True]
        session.commit()
    with Session(engine) as session:
        again = watch.record_runs(
            session, [run("a", latency_ms=5), run("c", at=T0 + timedelta(seconds=30))]
        )
        session.commit()
    assert again.new == [False, True]
    with Session(engine) as session:
        found = {s.workflow: s.tally for s in watch.slots(session, since=0, until=10**9)}
    support = found["support-bot"]
    assert (support.runs, support.errors, support.tokens_in, support.tokens_out) == (3, 1, 100, 40)
    assert support.cost_usd == pytest.approx(0.01)
    assert support.latency_count == 2 and support.latency_max_ms == 900
    assert [lat for _, lat in support.recent] == [120.0, 900.0]
    assert found["billing"].runs == 1


def test_requests_recorded_together_count_a_shared_run_once_in_the_first(engine: Engine) -> None:
    with Session(engine) as session:
        results = watch.record_batches(
            session, [[run("a"), run("b")], [run("b"), run("c")], [run("a", workflow="x")]]
        )
        session.commit()
    assert [r.new for r in results] == [[True, True], [False, True], [True]]
    assert [(r.accepted, r.duplicates) for r in results] == [(2, 0), (1, 1), (1, 0)]
    with Session(engine) as session:
        found = {s.workflow: s.tally.runs for s in watch.slots(session, since=0, until=10**9)}
    assert found == {"support-bot": 3, "x": 1}


def test_hour_rows_hold_the_sum_of_their_minutes(engine: Engine) -> None:
    runs = [run(f"r{i}", at=T0 + timedelta(minutes=i), latency_ms=100 * (i + 1)) for i in range(90)]
    with Session(engine) as session:
        watch.record_runs(session, runs)
        session.commit()
        minutes = watch.slots(session, since=0, until=10**9)
        hours = watch.slots(session, since=0, until=10**9, hourly=True)
    assert len(minutes) == 90 and [h.tally.runs for h in hours] == [60, 30]
    assert [h.start for h in hours] == [minute_of(T0), minute_of(T0) + 60]
    assert hours[0].tally.latency_max_ms == 6000 and hours[1].tally.latency_max_ms == 9000
    merged = Tally()
    for slot in minutes[:60]:
        merged.merge(slot.tally)
    assert merged.latency_buckets == hours[0].tally.latency_buckets


def test_versions_keep_first_and_last_seen(engine: Engine) -> None:
    with Session(engine) as session:
        watch.record_runs(
            session,
            [
                run("1", model="gpt-4o", prompt_version="v1"),
                run("2", at=T0 + timedelta(hours=2), model="gpt-4o-mini", prompt_version="v1"),
                run("3", at=T0 + timedelta(hours=3), model="gpt-4o"),
            ],
        )
        session.commit()
        models = watch.versions(session, kinds=[VersionKind.MODEL])
    assert [(v.value, v.first_seen, v.last_seen) for v in models] == [
        ("gpt-4o", T0, T0 + timedelta(hours=3)),
        ("gpt-4o-mini", T0 + timedelta(hours=2), T0 + timedelta(hours=2)),
    ]


def test_two_writers_adding_to_the_same_minute_lose_nothing(engine: Engine, db_url: str) -> None:
    other = create_db_engine(db_url)
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def write(eng: Engine, prefix: str) -> None:
        try:
            barrier.wait()
            for batch in range(10):
                with Session(eng) as session:
                    watch.record_runs(
                        session,
                        [
                            run(f"{prefix}{batch}-{i}", latency_ms=50, cost_usd=0.5)
                            for i in range(20)
                        ],
                    )
                    session.commit()
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [
        threading.Thread(target=write, args=(e, p)) for e, p in ((engine, "x"), (other, "y"))
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    other.dispose()
    assert not errors
    with Session(engine) as session:
        (minute,) = watch.slots(session, since=0, until=10**9)
        (hour,) = watch.slots(session, since=0, until=10**9, hourly=True)
    assert minute.tally.runs == hour.tally.runs == 400
    assert minute.tally.cost_usd == pytest.approx(200.0)


def test_prune_keeps_what_the_retention_asks_for(engine: Engine) -> None:
    now = T0 + timedelta(days=40)
    with Session(engine) as session:
        watch.record_runs(
            session,
            [
                run("old", at=T0, latency_ms=10),
                run("kept", at=now - timedelta(days=3), latency_ms=20),
                run("fresh", at=now - timedelta(minutes=5), latency_ms=30),
            ],
        )
        session.commit()
        watch.prune(session, now=now, retention=Retention())
        session.commit()
        count = {
            t.name: session.execute(sa.select(sa.func.count()).select_from(t)).scalar()
            for t in (minute_table, hour_table, seen_table)
        }
        recent = dict(
            session.execute(sa.select(minute_table.c.minute, minute_table.c.recent)).all()
        )
    # the 40-day-old minute and its run key went; its hour stays (400 days)
    assert count == {"watch_minute": 2, "watch_hour": 3, "watch_seen": 2}
    assert recent[minute_of(now - timedelta(days=3))] is None
    assert recent[minute_of(now - timedelta(minutes=5))] is not None


def test_run_ids_can_be_remembered_for_less_than_the_minutes(engine: Engine) -> None:
    now = T0 + timedelta(days=10)
    with Session(engine) as session:
        watch.record_runs(
            session, [run("a", at=now - timedelta(days=5)), run("b", at=now - timedelta(days=1))]
        )
        session.commit()
        watch.prune(session, now=now, retention=Retention(run_ids=timedelta(days=3)))
        session.commit()
        keys = session.execute(sa.select(sa.func.count()).select_from(seen_table)).scalar()
        (minutes,) = [
            session.execute(sa.select(sa.func.count()).select_from(minute_table)).scalar()
        ]
    assert (keys, minutes) == (1, 2)
