"""End to end: a workflow that posts its runs starts failing and getting expensive, gets the
incident the runbook prescribes with reasons that match what `watch` shows, and the incident
resolves once the workflow has recovered for the hold-down time.

An in-process bot with the example policy (its email-summarizer has a pinned cost per run of
$0.004); the runs arrive over HTTP at `/webhooks/runs`; the scheduler's jobs run by hand.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlmodel import Session

from bot.scheduler import run_due_jobs
from bot.services.watch import WatchService
from bot.services.watch_rules import WatchJudge
from storage.models import IncidentRow, JournalRow
from tests.conftest import AUTH, Bot, FakeClock, make_bot

FLOW = "email-summarizer"
# a Monday, 11:00 in Berlin (the example's business hours)
T0 = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)


@pytest.fixture
def bot(db_url: str) -> Iterator[Bot]:
    b = make_bot(db_url, clock=FakeClock(T0))
    with b.client:
        yield b
    b.container.engine.dispose()


def post_runs(bot: Bot, tag: str, *, count: int, failed: int, cost: float) -> None:
    """Post `count` runs of the last 9 minutes, the first `failed` of them errors."""
    now = bot.clock.now
    runs: list[dict[str, Any]] = [
        {
            "workflow": FLOW,
            "run_id": f"{tag}-{i}",
            "at": (
                now - timedelta(minutes=9) + timedelta(minutes=9) * (i + 0.5) / count
            ).isoformat(),
            "status": "error" if i < failed else "ok",
            "latency_ms": 900,
            "tokens_in": 1200,
            "tokens_out": 300,
            "cost_usd": cost,
            "model": "gpt-4o-mini",
        }
        for i in range(count)
    ]
    answer = bot.client.post("/webhooks/runs", json={"runs": runs}, headers=AUTH)
    assert answer.status_code == 202, answer.text


def jobs(bot: Bot) -> None:
    run_due_jobs(bot.container.engine, bot.container.jobs, lambda: None)


def watch_incidents(bot: Bot) -> list[IncidentRow]:
    with Session(bot.container.engine) as session:
        query = sa.select(IncidentRow).where(IncidentRow.source == "watch")  # type: ignore[arg-type]
        return list(session.execute(query).scalars())


@pytest.mark.slow
@pytest.mark.both_backends
def test_failing_and_expensive_then_recovered(bot: Bot) -> None:
    post_runs(bot, "bad", count=200, failed=50, cost=0.012)
    jobs(bot)
    [incident] = watch_incidents(bot)
    assert incident.workflow == FLOW and incident.severity == "P1"
    reasons = {r["rule"]: r["text"] for r in incident.severity_reasons}
    # the runbook's P1 (error rate above 20 %) and P2 (cost per run above 200 % of baseline)
    assert "50 of 200 runs" in reasons["watch:error-rate-critical"]
    assert "25.0 %" in reasons["watch:error-rate-critical"]
    assert "$0.0120" in reasons["watch:cost-per-run"] or "0.012" in reasons["watch:cost-per-run"]

    # what `watch` shows (its service, as the CLI builds it) is what the reasons quote
    policy = bot.container.policy
    watch = WatchService(policy=policy, clock=bot.clock, judge=WatchJudge(policy=policy))
    with Session(bot.container.engine) as session:
        [figures] = watch.figures(session, FLOW)
    assert figures.error_rate_10m == pytest.approx(0.25)
    firing = {r.rule: r for r in figures.rules if r.state == "firing"}
    assert firing["error-rate-critical"].text == reasons["watch:error-rate-critical"]
    assert {"error-rate", "error-rate-critical", "cost-per-run"} <= set(firing)

    # the scheduler's next ticks change nothing while it keeps failing
    bot.clock.advance(seconds=30)
    jobs(bot)
    assert len(watch_incidents(bot)) == 1

    # it recovers: healthy, cheap runs every 10 minutes; the hour of cost and the hold-down
    # pass, every rule's alert resolves, and the incident with them
    for step in range(10):
        bot.clock.advance(minutes=10)
        post_runs(bot, f"good-{step}", count=60, failed=0, cost=0.003)
        jobs(bot)
    [incident] = watch_incidents(bot)
    assert incident.resolved_at is not None
    with Session(bot.container.engine) as session:
        texts = [
            j.text
            for j in session.execute(
                sa.select(JournalRow).where(JournalRow.incident_id == incident.id)  # type: ignore[arg-type]
            ).scalars()
        ]
    assert any("Incident opened from watch" in t for t in texts)
