"""The watch service on a real database: runs recorded, figures and the week read back."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session

from bot.config import Policy, Workflow
from bot.domain.watch.figures import WatchFigures
from bot.domain.watch.history import Run, RunStatus
from bot.domain.watch.policy import WorkflowWatch
from bot.services.errors import UnknownWorkflow
from bot.services.watch import UnwatchedWorkflow, WatchService
from storage.db import create_db_engine
from storage.watch import record_runs
from tests.domain.test_watch_figures import figures_at
from tests.support.watch_week import NOW, WORKFLOW, week_runs


def policy(timezone: str = "UTC", **workflows: WorkflowWatch) -> Policy:
    return Policy(
        timezone=timezone,
        workflows={name: Workflow(watch=watch) for name, watch in workflows.items()},
    )


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    engine = create_db_engine(db_url)
    yield engine
    engine.dispose()


def record(engine: Engine, runs: list[Run]) -> None:
    with Session(engine) as session:
        record_runs(session, runs)
        session.commit()


def figures(
    engine: Engine, service: WatchService, workflow: str | None = None
) -> list[WatchFigures]:
    with Session(engine) as session:
        return service.figures(session, workflow)


@pytest.mark.slow
@pytest.mark.both_backends
def test_the_synthetic_week_read_back_from_the_database(engine: Engine) -> None:
    record(engine, week_runs())
    service = WatchService(policy=policy(), clock=lambda: NOW)
    [f] = figures(engine, service)
    # the hand-checked figures of the domain's test of this week, read through the database
    expected = figures_at(week_runs(), NOW).as_json()
    got = f.as_json()
    assert got.keys() == expected.keys()
    for key, value in expected.items():
        assert got[key] == (pytest.approx(value) if isinstance(value, float) else value), key
    assert (f.workflow, f.runs_last_hour, f.latency_p95_ms_1h) == (WORKFLOW, 8, pytest.approx(984))
    assert f.last_run_at == datetime(2026, 12, 6, 14, 1, 15, tzinfo=UTC)
    assert (f.history_days, f.baseline_note) == (8, None)


@pytest.mark.slow
@pytest.mark.both_backends
def test_the_week_has_an_hourly_point_for_each_of_168_hours(engine: Engine) -> None:
    record(engine, week_runs())
    service = WatchService(policy=policy(), clock=lambda: NOW)
    with Session(engine) as session:
        points = service.week(session, WORKFLOW)
    assert len(points) == 168
    assert points[-1].start == datetime(2026, 12, 6, 14, tzinfo=UTC)
    # 14:00 today: the 14:00 timeout and the 14:01 ok, $0.07 + $0.08
    assert (points[-1].runs, points[-1].error_rate) == (2, 0.5)
    assert points[-1].cost_usd == pytest.approx(0.15)
    # every hour of the week before today had its one background run
    assert all(p.runs == 1 for p in points[:-15])


def test_every_policy_workflow_and_every_recent_one_sorted_by_name(engine: Engine) -> None:
    record(
        engine,
        [
            Run("zeta", "z1", NOW - timedelta(minutes=5), cost_usd=0.5),
            Run("alpha", "a1", NOW - timedelta(minutes=5)),
            # seen only before the 35 days of minutes kept: no longer listed
            Run("old", "o1", NOW - timedelta(days=36)),
        ],
    )
    service = WatchService(policy=policy(quiet=WorkflowWatch()), clock=lambda: NOW)
    found = figures(engine, service)
    assert [f.workflow for f in found] == ["alpha", "quiet", "zeta"]
    alpha, quiet, zeta = found
    assert (alpha.runs_last_hour, alpha.error_rate_10m) == (1, 0.0)
    assert zeta.spend_today_usd == 0.5
    # in the policy file, never ran: nothing made up
    assert quiet == WatchFigures(workflow="quiet", baseline_note="no history yet")


def test_a_named_workflow_by_name_or_alias(engine: Engine) -> None:
    record(
        engine,
        [
            Run("support-bot", "s1", NOW - timedelta(minutes=1), status=RunStatus.ERROR),
            Run("other", "o1", NOW - timedelta(minutes=1)),
        ],
    )
    watch = WorkflowWatch(alias=["support"], cost_per_run_usd=0.02)
    service = WatchService(policy=policy(**{"support-bot": watch}), clock=lambda: NOW)
    [by_alias] = figures(engine, service, "support")
    assert by_alias.workflow == "support-bot"
    assert by_alias.error_rate_10m == 1.0
    # the pinned baseline needs no history
    assert by_alias.cost_per_run_baseline == 0.02
    # a workflow outside the policy file that sent runs is known too
    assert [f.workflow for f in figures(engine, service, "other")] == ["other"]


def test_a_workflow_nobody_knows_is_a_typed_error(engine: Engine) -> None:
    record(engine, [Run("support-bot", "s1", NOW - timedelta(minutes=1))])
    service = WatchService(policy=policy(), clock=lambda: NOW)
    with pytest.raises(UnwatchedWorkflow) as raised, Session(engine) as session:
        service.figures(session, "nope")
    assert isinstance(raised.value, UnknownWorkflow)
    assert str(raised.value) == (
        "No workflow 'nope' is in the policy file or has sent runs lately (workflows: support-bot)."
    )
    with pytest.raises(UnwatchedWorkflow), Session(engine) as session:
        service.week(session, "nope")


def test_no_workflows_at_all_is_an_empty_list(engine: Engine) -> None:
    assert figures(engine, WatchService(policy=policy(), clock=lambda: NOW)) == []


@pytest.mark.both_backends
def test_all_workflows_take_a_few_ranged_queries(engine: Engine) -> None:
    runs = [
        Run(
            f"wf-{n:02d}",
            f"r{i}",
            NOW - timedelta(hours=20 * i),
            cost_usd=0.01,
            latency_ms=100.0 + i,
        )
        for n in range(20)
        for i in range(10)
    ]
    record(engine, runs)
    service = WatchService(policy=policy(timezone="Asia/Kolkata"), clock=lambda: NOW)
    statements: list[str] = []

    def count(*args: object) -> None:
        if str(args[2]).lstrip().upper().startswith("SELECT"):
            statements.append(str(args[2]))

    sa.event.listen(engine, "before_cursor_execute", count)
    try:
        found = figures(engine, service)
    finally:
        sa.event.remove(engine, "before_cursor_execute", count)
    assert len(found) == 20
    # the workflows seen, the sums of minutes and of hours, the latest latencies (of the last two
    # hours, then of the two days they are kept for the workflows with fewer than three), the
    # versions, the first hour and latest run: no query per workflow, nor per day
    assert len(statements) == 7
    # the runs 40 and 20 hours ago and now's (latencies are kept 2 days), oldest first
    assert all(f.last_latencies_ms == (102.0, 101.0, 100.0) for f in found)
    # runs 20 h apart back from 14:02:30 UTC, the first 180 h ago
    assert all(f.history_days == 7 for f in found)
    # the 7 Kolkata days before today are Nov 28 18:30 .. Dec 5 18:30 UTC, 19.5 h to 187.5 h
    # ago: the runs 20 h .. 180 h ago, 9 of them
    assert all(f.spend_7d_daily_avg_usd == pytest.approx(0.09 / 7) for f in found)
