"""The watched rules at work on a real database: incidents open, hold, resolve, and only once."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session

from bot.config import Policy, Workflow
from bot.domain.watch.history import Run, RunStatus, hour_of, minute_of
from bot.domain.watch.policy import WorkflowWatch
from bot.domain.watch.rules import Holding
from bot.services.incidents import IncidentService
from bot.services.killswitch import KillSwitchService
from bot.services.watch_rules import (
    WATCH_SOURCE,
    SlowReads,
    WatchEvaluator,
    WatchJudge,
    rule_fingerprint,
)
from storage.db import create_db_engine, migrate
from storage.models import AlertRow, IncidentRow
from storage.watch import record_runs
from tests.conftest import FakeClock

pytestmark = pytest.mark.both_backends

# a Monday, inside the default business hours (09:00-17:00 UTC)
T0 = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
FLOW = "support-bot"


def policy(**workflow: object) -> Policy:
    return Policy(workflows={FLOW: Workflow(**workflow)})  # type: ignore[arg-type]


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    engine = create_db_engine(db_url)
    migrate(engine)
    yield engine
    engine.dispose()


def runs(engine: Engine, end: datetime, count: int, failed: int, prefix: str) -> None:
    """Record `count` runs over the 9 minutes before `end`, the first `failed` of them errors
    (inside the rules' 10-minute window, which ends with the current minute)."""
    step = timedelta(minutes=9) / count
    batch = [
        Run(
            workflow=FLOW,
            run_id=f"{prefix}-{i}",
            at=end - timedelta(minutes=9) + step * (i + 0.5),
            status=RunStatus.ERROR if i < failed else RunStatus.OK,
            latency_ms=800,
        )
        for i in range(count)
    ]
    with Session(engine) as session:
        record_runs(session, batch)
        session.commit()


def tick(engine: Engine, evaluator: WatchEvaluator, now: datetime) -> int:
    with Session(engine) as session:
        filed = evaluator.apply(session, evaluator.findings(session, now=now), now=now)
        session.commit()
    return filed


def incidents(engine: Engine) -> list[IncidentRow]:
    with Session(engine) as session:
        return list(session.exec(sa.select(IncidentRow).order_by(IncidentRow.id)).scalars())  # type: ignore[call-overload, arg-type]


def alerts(engine: Engine) -> dict[str, str]:
    with Session(engine) as session:
        rows = session.execute(sa.select(AlertRow.fingerprint, AlertRow.status))
        return dict(rows.all())


def evaluator_for(p: Policy, clock: FakeClock) -> WatchEvaluator:
    return WatchEvaluator(
        judge=WatchJudge(policy=p),
        policy=p,
        clock=clock,
        incidents=IncidentService(policy=p, clock=clock),
    )


def test_a_failing_workflow_opens_one_incident_with_the_figures_and_resolves_after_hold_down(
    engine: Engine,
) -> None:
    clock = FakeClock(T0)
    p = policy()
    evaluator = evaluator_for(p, clock)
    runs(engine, T0, 100, 30, "a")
    assert tick(engine, evaluator, clock.now) >= 1
    [incident] = incidents(engine)
    assert incident.source == WATCH_SOURCE and incident.workflow == FLOW
    assert incident.severity == "P1"
    reasons = " ".join(r["text"] for r in incident.severity_reasons)
    assert "30 of 100 runs" in reasons and "20 %" in reasons
    fired = alerts(engine)
    assert fired[rule_fingerprint(FLOW, "error-rate-critical")] == "firing"
    # the next tick, and a restarted bot, file nothing new: the alert is already firing
    assert tick(engine, evaluator, clock.now) == 0
    assert tick(engine, evaluator_for(p, clock), clock.now) == 0
    assert len(incidents(engine)) == 1

    # the workflow recovers: clear, but inside the hold-down nothing resolves
    clock.advance(minutes=10)
    runs(engine, clock.now, 100, 0, "b")
    assert tick(engine, evaluator, clock.now) == 0
    assert incidents(engine)[0].resolved_at is None
    # clear for longer than the hold-down (15 min): every rule's alert resolves, then the incident
    clock.advance(minutes=10)
    runs(engine, clock.now, 100, 0, "c")
    assert tick(engine, evaluator, clock.now) >= 1
    assert set(alerts(engine).values()) == {"resolved"}
    assert incidents(engine)[0].resolved_at is not None


def test_a_workflow_that_does_not_resolve_on_source_resolve_keeps_its_incident_open(
    engine: Engine,
) -> None:
    clock = FakeClock(T0)
    p = policy(resolve_on_source_resolve=False)
    evaluator = evaluator_for(p, clock)
    runs(engine, T0, 100, 30, "a")
    tick(engine, evaluator, clock.now)
    for prefix in ("b", "c", "d"):
        clock.advance(minutes=10)
        runs(engine, clock.now, 100, 0, prefix)
        tick(engine, evaluator, clock.now)
    assert set(alerts(engine).values()) == {"resolved"}
    assert incidents(engine)[0].resolved_at is None


def test_too_few_runs_open_nothing(engine: Engine) -> None:
    clock = FakeClock(T0)
    evaluator = evaluator_for(policy(), clock)
    runs(engine, T0, 5, 3, "a")  # 60 % of 5 runs: below the minimum number of runs
    assert tick(engine, evaluator, clock.now) == 0
    assert incidents(engine) == []
    with Session(engine) as session:
        found = {f.rule: f for f in evaluator.findings(session, now=clock.now)}
    assert found["error-rate-critical"].holding is Holding.TOO_FEW_RUNS


def test_two_replicas_judging_at_once_open_one_incident(engine: Engine) -> None:
    clock = FakeClock(T0)
    p = policy()
    runs(engine, T0, 100, 30, "a")
    replicas = [evaluator_for(p, clock), evaluator_for(p, clock)]
    # PostgreSQL: both read before either writes. SQLite serialises the two transactions
    # from their first statement (one writer at a time), so there they only queue.
    start = threading.Barrier(2 if engine.dialect.name == "postgresql" else 1)
    errors: list[BaseException] = []

    def judge(evaluator: WatchEvaluator) -> None:
        try:
            with Session(engine) as session:
                found = evaluator.findings(session, now=clock.now)
                start.wait(5)
                evaluator.apply(session, found, now=clock.now)
                session.commit()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=judge, args=(r,)) for r in replicas]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == []
    assert len(incidents(engine)) == 1
    assert all(status == "firing" for status in alerts(engine).values())


def test_a_workflow_that_goes_quiet_in_business_hours_gets_a_p2_and_none_at_night(
    engine: Engine,
) -> None:
    clock = FakeClock(T0)
    p = policy(watch=WorkflowWatch(expect_every="30m"))
    evaluator = evaluator_for(p, clock)
    runs(engine, T0, 30, 0, "a")  # 09:51 .. 10:00, then nothing
    clock.advance(minutes=25)
    assert tick(engine, evaluator, clock.now) == 0
    clock.advance(minutes=10)  # 35 min of business time without a run
    assert tick(engine, evaluator, clock.now) == 1
    [incident] = incidents(engine)
    assert incident.severity == "P2"
    assert alerts(engine) == {rule_fingerprint(FLOW, "silence"): "firing"}
    # runs again: the silence resolves once it has been clear for the hold-down
    runs(engine, clock.now, 30, 0, "b")
    clock.advance(minutes=16)
    runs(engine, clock.now, 30, 0, "c")
    assert tick(engine, evaluator, clock.now) == 1
    assert incidents(engine)[0].resolved_at is not None

    # the last run at 16:55 on Monday; at 17:45 and over the night nothing is silence
    evening = T0.replace(hour=16, minute=56)
    runs(engine, evening, 30, 0, "d")
    for hours in (0.8, 3, 8):
        clock.now = evening + timedelta(hours=hours)
        assert tick(engine, evaluator, clock.now) == 0
    assert len(incidents(engine)) == 1


def test_a_restart_in_the_middle_of_a_sustained_error_rate_keeps_its_start(
    engine: Engine,
) -> None:
    clock = FakeClock(T0)
    p = policy()
    # 6 % of the runs fail, from 10:00 on: P3 at once, P2 once every slice of 2 h is above 5 %
    for step in range(7):
        end = T0 + timedelta(minutes=10 * (step + 1))
        runs(engine, end, 100, 6, f"first-{step}")
    clock.now = T0 + timedelta(minutes=70)
    assert tick(engine, evaluator_for(p, clock), clock.now) == 1
    assert alerts(engine) == {rule_fingerprint(FLOW, "error-rate"): "firing"}
    # the bot restarts; the failures go on for another hour
    for step in range(7, 13):
        end = T0 + timedelta(minutes=10 * (step + 1))
        runs(engine, end, 100, 6, f"then-{step}")
    clock.now = T0 + timedelta(minutes=130)
    restarted = evaluator_for(p, clock)
    assert tick(engine, restarted, clock.now) == 1
    [incident] = incidents(engine)
    assert incident.severity == "P2"
    with Session(engine) as session:
        found = {f.rule: f for f in restarted.findings(session, now=clock.now)}
    sustained = found["error-rate-sustained"]
    assert sustained.holding is Holding.FIRING
    # the streak began with the first failing slice, before the restart
    assert sustained.since is not None and sustained.since <= T0 + timedelta(minutes=11)
    assert "for 2 h" in sustained.text


def test_a_rule_that_begins_after_a_prompt_change_names_it(engine: Engine) -> None:
    clock = FakeClock(T0)
    healthy = [
        Run(workflow=FLOW, run_id=f"old-{i}", at=T0 - timedelta(hours=2, minutes=i % 9),
            prompt_version="summary-v12")
        for i in range(40)
    ]  # fmt: skip
    failing = [
        Run(workflow=FLOW, run_id=f"new-{i}", at=T0 - timedelta(minutes=8) + timedelta(seconds=12 * i),
            status=RunStatus.ERROR if i % 3 == 0 else RunStatus.OK, prompt_version="summary-v13")
        for i in range(40)
    ]  # fmt: skip
    with Session(engine) as session:
        record_runs(session, healthy)
        record_runs(session, failing)
        session.commit()
    evaluator = evaluator_for(policy(), clock)
    with Session(engine) as session:
        found = {f.rule: f for f in evaluator.findings(session, now=clock.now)}
    critical = found["error-rate-critical"]
    assert critical.holding is Holding.FIRING
    assert "after prompt summary-v12 → summary-v13" in critical.text


def test_a_workflow_paused_by_its_kill_switch_is_not_silent(engine: Engine) -> None:
    clock = FakeClock(T0)
    p = policy(watch=WorkflowWatch(expect_every="30m"))
    switches = KillSwitchService(policy=p, clock=clock)
    evaluator = WatchEvaluator(
        judge=WatchJudge(policy=p, switches=switches),
        policy=p,
        clock=clock,
        incidents=IncidentService(policy=p, clock=clock),
    )
    runs(engine, T0, 30, 0, "a")
    clock.advance(minutes=35)
    assert tick(engine, evaluator, clock.now) == 1  # silent: P2
    with Session(engine) as session:
        switches.pause(session, workflow=FLOW, actor="U1", reason="drift")
        session.commit()
    # paused: its runs are with people, so the silence resolves at once and stays off
    assert tick(engine, evaluator, clock.now) == 1
    assert alerts(engine) == {rule_fingerprint(FLOW, "silence"): "resolved"}
    clock.advance(hours=2)
    assert tick(engine, evaluator, clock.now) == 0
    with Session(engine) as session:
        found = {f.rule: f for f in evaluator.findings(session, now=clock.now)}
    assert found["silence"].holding is Holding.OFF
    assert "kill switch" in found["silence"].text


def test_the_cached_hours_take_in_a_backdated_run_within_a_turn_of_the_days(
    engine: Engine,
) -> None:
    slow = SlowReads()
    runs(engine, T0, 30, 0, "a")
    earlier = T0 - timedelta(days=3)
    runs(engine, earlier, 10, 0, "old")

    def hour_runs(now: datetime) -> int:
        with Session(engine) as session:
            hours, _reach = slow.read(session, [FLOW], now)
        return hours[FLOW][hour_of(minute_of(earlier - timedelta(minutes=5)))].runs

    now = T0
    assert hour_runs(now) == 10
    runs(engine, earlier, 5, 0, "late")  # backdated into an hour the cache holds
    seen = []
    for _ in range(10):  # nine days of hours, one a tick
        now += timedelta(seconds=30)
        seen.append(hour_runs(now))
    assert seen[0] == 10 and seen[-1] == 15
