"""The database adds up spans of the watched history: minutes, hours, the latest latencies."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session

from bot.domain.watch.history import Run, RunStatus, epoch_ms, minute_of
from storage import watch
from storage.db import create_db_engine

pytestmark = pytest.mark.both_backends

T0 = datetime(2026, 11, 2, 10, 0, tzinfo=UTC)
M0 = minute_of(T0)


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    engine = create_db_engine(db_url)
    with Session(engine) as session:
        watch.record_runs(
            session,
            [
                Run("a", "1", T0, latency_ms=100.0, tokens_in=10**10, cost_usd=0.25),
                Run("a", "2", T0 + timedelta(minutes=1, seconds=5), status=RunStatus.ERROR),
                Run("a", "3", T0 + timedelta(minutes=1, seconds=9), latency_ms=300.0),
                Run("a", "4", T0 + timedelta(hours=1), status=RunStatus.TIMEOUT, cost_usd=1.0),
                Run("b", "1", T0 + timedelta(minutes=1), confidence=0.8),
            ],
        )
        session.commit()
    yield engine
    engine.dispose()


def test_sums_add_up_each_part_per_workflow(engine: Engine) -> None:
    parts = [(M0, M0 + 2, False), (M0 + 1, M0 + 2, False), (M0, M0 + 120, True)]
    with Session(engine) as session:
        found = watch.sums(session, parts)
    both = found[("a", M0, M0 + 2, False)]
    assert (both.runs, both.errors, both.cost_usd) == (3, 1, 0.25)
    # sums of big integers stay integers (PostgreSQL's sum of a bigint is a numeric)
    assert both.tokens_in == 10**10 and isinstance(both.tokens_in, int)
    assert (both.latency_count, both.latency_max_ms) == (2, 300.0)
    assert sum(both.latency_buckets) == 2
    assert both.last_at_ms == epoch_ms(T0 + timedelta(minutes=1, seconds=9))
    second = found[("a", M0 + 1, M0 + 2, False)]
    assert (second.runs, second.errors, second.latency_count) == (2, 1, 1)
    hours = found[("a", M0, M0 + 120, True)]
    assert (hours.runs, hours.errors, hours.timeouts, hours.failed) == (4, 1, 1, 2)
    assert hours.cost_usd == pytest.approx(1.25)
    assert found[("b", M0, M0 + 2, False)].confidence_count == 1
    # only the named workflows are read; a part with nothing in it has no entry
    with Session(engine) as session:
        only_a = watch.sums(session, parts, workflows=["a"])
        assert {key[0] for key in only_a} == {"a"}
        assert watch.sums(session, [(M0 + 500, M0 + 600, False)]) == {}


def test_recent_latencies_in_time_order(engine: Engine) -> None:
    with Session(engine) as session:
        recent = watch.recent_latencies(session, since=M0, until=M0 + 60)
    assert recent == {
        "a": [
            (epoch_ms(T0), 100.0),
            (epoch_ms(T0 + timedelta(minutes=1, seconds=9)), 300.0),
        ]
    }
    with Session(engine) as session:
        latest = watch.recent_latencies(session, since=M0, until=M0 + 60, count=1)
        assert latest == {"a": [(epoch_ms(T0 + timedelta(minutes=1, seconds=9)), 300.0)]}
        # the minutes before `since` are not read
        assert watch.recent_latencies(session, since=M0 + 2, until=M0 + 60) == {}


def test_reach_is_the_first_hour_and_the_latest_run(engine: Engine) -> None:
    with Session(engine) as session:
        reach = watch.reach(session)
    assert reach == {
        "a": (M0, epoch_ms(T0 + timedelta(hours=1))),
        "b": (M0, epoch_ms(T0 + timedelta(minutes=1))),
    }
