"""`ai-incident watch`: the watched workflows' figures as text and JSON, read from the database."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlmodel import Session

from bot.cli import main
from bot.domain.watch.history import Run, RunStatus
from storage.db import create_db_engine
from storage.watch import record_runs

POLICY = """\
timezone: UTC
workflows:
  support-bot:
    watch:
      alias: [support]
      cost_per_run_usd: 0.01
  quiet-bot: {}
"""


@pytest.fixture
def setup(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> datetime:
    """Point the command at a database with a few runs of support-bot; return the runs' now."""
    config = tmp_path / "ai-incident.yml"
    config.write_text(POLICY, encoding="utf-8")
    for name in ("AI_INCIDENT_WEBHOOK_TOKEN", "SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DATABASE_URL", db_url)
    monkeypatch.setenv("AI_INCIDENT_CONFIG", str(config))
    # the command reads the real clock: the runs are a few minutes before it
    now = datetime.now(UTC)
    runs = [
        Run("support-bot", "a", now - timedelta(minutes=3), latency_ms=820.0, cost_usd=0.02),
        Run("support-bot", "b", now - timedelta(minutes=2), status=RunStatus.ERROR),
        Run(
            "support-bot",
            "c",
            now - timedelta(minutes=1),
            latency_ms=2900.0,
            tokens_in=1000,
            tokens_out=830,
            model="gpt-4o-2024-08-06",
            prompt_version="v12",
        ),
    ]
    engine = create_db_engine(db_url)
    with Session(engine) as session:
        record_runs(session, runs)
        session.commit()
    engine.dispose()
    return now


def test_watch_prints_one_line_per_workflow(
    setup: datetime, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["watch"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "quiet-bot — no runs seen"
    support = lines[1]
    assert support.startswith("support-bot — 3 runs in the last hour · errors 33.3 % (10 min)")
    assert "last 2: 820 ms, 2.9 s" in support
    # tokens of one run over three: 1,830 / 3; cost $0.02 / 3; the pinned baseline
    assert "tokens/run 610" in support
    assert "cost/run $0.0067 (baseline $0.010)" in support
    assert "gpt-4o-2024-08-06, prompt v12" in support
    assert support.endswith("baselines: not enough history (0 days)")
    assert len(lines) == 2


def test_watch_json_has_the_documented_keys(
    setup: datetime, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["watch", "--format", "json", "--workflow", "support"]) == 0
    [figures] = json.loads(capsys.readouterr().out)
    assert figures["workflow"] == "support-bot"
    assert figures["runs_last_hour"] == 3
    assert figures["error_rate_10m"] == pytest.approx(1 / 3)
    assert figures["last_latencies_ms"] == [820, 2900]
    assert figures["latency_max_ms_1h"] == 2900
    # (run "a" is yesterday's when the test runs in the first minutes after midnight, UTC)
    spent = 0.02 if (setup - timedelta(minutes=3)).date() == setup.date() else 0.0
    assert figures["spend_today_usd"] == pytest.approx(spent)
    assert figures["cost_per_run_baseline"] == 0.01
    assert figures["tokens_per_run_baseline"] is None
    assert figures["history_days"] == 0
    last = datetime.fromisoformat(figures["last_run_at"].replace("Z", "+00:00"))
    assert abs(last - (setup - timedelta(minutes=1))) < timedelta(seconds=1)
    assert len(figures) == 24
    # every watched rule, judged at the CLI's clock: 3 runs are too few for an error rate
    rules = {r["rule"]: r for r in figures["rules"]}
    assert rules["error-rate-critical"]["state"] == "too-few-runs"
    assert rules["tokens-per-run"]["state"] == "no-baseline"


def test_watch_of_an_unknown_workflow_says_so(
    setup: datetime, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["watch", "--workflow", "nope"]) == 1
    err = capsys.readouterr().err
    assert err.strip() == (
        "No workflow 'nope' is in the policy file or has sent runs lately "
        "(workflows: quiet-bot, support-bot)."
    )


def test_watch_of_a_database_without_the_schema_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "ai-incident.yml"
    config.write_text("timezone: UTC\n", encoding="utf-8")
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'empty.db'}")
    monkeypatch.setenv("AI_INCIDENT_CONFIG", str(config))
    assert main(["watch"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("cannot read the watched history from sqlite:///")
    assert "ai-incident migrate" in err and len(err.splitlines()) == 1


def test_watch_without_any_workflow(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "ai-incident.yml"
    config.write_text("timezone: UTC\n", encoding="utf-8")
    monkeypatch.setenv("DATABASE_URL", db_url)
    monkeypatch.setenv("AI_INCIDENT_CONFIG", str(config))
    assert main(["watch"]) == 0
    assert (
        capsys.readouterr().out == "no workflows: none in the policy file, and none has sent runs\n"
    )
    assert main(["watch", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out) == []
