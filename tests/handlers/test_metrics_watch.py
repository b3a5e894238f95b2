"""/metrics: per-workflow gauges of the watched figures, computed when Prometheus scrapes."""

from __future__ import annotations

from datetime import timedelta

from sqlmodel import Session

from bot.domain.watch.history import Run, RunStatus
from storage.watch import record_runs
from tests.conftest import FakeClock, make_bot
from tests.support.watch_week import NOW


def test_metrics_has_each_workflows_runs_error_rate_and_spend(db_url: str) -> None:
    clock = FakeClock(NOW)
    bot = make_bot(db_url, clock=clock)
    with Session(bot.container.engine) as session:
        record_runs(
            session,
            [
                Run("support-bot", "a", NOW - timedelta(minutes=2), cost_usd=0.25),
                Run("support-bot", "b", NOW - timedelta(minutes=1), status=RunStatus.TIMEOUT),
                Run("support-bot", "c", NOW - timedelta(minutes=30), cost_usd=0.5),
                # yesterday: no runs in the last hour, nothing spent today
                Run("nightly-report", "n", NOW - timedelta(days=1), cost_usd=3.0),
            ],
        )
        session.commit()
    with bot.client:
        text = bot.client.get("/metrics").text
        assert 'ai_incident_workflow_runs_last_hour{workflow="support-bot"} 3.0' in text
        # 14:02:30: the last 10 minutes hold the two latest runs, one a timeout
        assert 'ai_incident_workflow_error_rate_10m{workflow="support-bot"} 0.5' in text
        assert 'ai_incident_workflow_spend_today_usd{workflow="support-bot"} 0.75' in text
        assert 'ai_incident_workflow_runs_last_hour{workflow="nightly-report"} 0.0' in text
        assert 'ai_incident_workflow_spend_today_usd{workflow="nightly-report"} 0.0' in text
        # no runs in the last 10 minutes: no error rate rather than a made-up 0
        assert 'ai_incident_workflow_error_rate_10m{workflow="nightly-report"}' not in text
        # the example policy's workflows that never ran have no samples
        assert "# TYPE ai_incident_workflow_runs_last_hour gauge" in text
        assert 'workflow="email-summarizer"' not in text
        clock.advance(hours=2)
        later = bot.client.get("/metrics").text
        assert 'ai_incident_workflow_runs_last_hour{workflow="support-bot"} 0.0' in later
