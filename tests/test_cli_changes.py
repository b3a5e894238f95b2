"""`ai-incident changes`: the change log as text and JSON, read from the database."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlmodel import Session

from bot.cli import main
from bot.domain.watch.history import Run
from storage.db import create_db_engine
from storage.watch import record_runs

POLICY = """\
timezone: UTC
workflows:
  support-bot:
    watch:
      alias: [support]
  quiet-bot: {}
"""


@pytest.fixture
def setup(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> datetime:
    config = tmp_path / "ai-incident.yml"
    config.write_text(POLICY, encoding="utf-8")
    for name in ("AI_INCIDENT_WEBHOOK_TOKEN", "SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DATABASE_URL", db_url)
    monkeypatch.setenv("AI_INCIDENT_CONFIG", str(config))
    # the command reads the real clock: the runs are placed relative to it
    now = datetime.now(UTC).replace(microsecond=0)
    runs = [
        Run("support-bot", "a", now - timedelta(days=3), model="gpt-4o-2024-08-06"),
        Run("support-bot", "b", now - timedelta(hours=2), model="gpt-4o-2024-11-20"),
        Run("quiet-bot", "c", now - timedelta(hours=1), prompt_version="v2"),
        Run("quiet-bot", "d", now - timedelta(days=45), prompt_version="v1"),
    ]
    engine = create_db_engine(db_url)
    with Session(engine) as session:
        record_runs(session, runs)
        session.commit()
    engine.dispose()
    return now


def test_changes_prints_the_last_30_days_newest_first(
    setup: datetime, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["changes"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3
    assert lines[0].endswith("quiet-bot: prompt v1 → v2 (seen in runs)")
    assert lines[1].endswith(
        "support-bot: model gpt-4o-2024-08-06 → gpt-4o-2024-11-20 (seen in runs)"
    )
    assert lines[2].endswith("support-bot: model gpt-4o-2024-08-06 (first seen) (seen in runs)")


def test_changes_json_of_one_workflow_by_its_alias(
    setup: datetime, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["changes", "--workflow", "support", "--format", "json", "--days", "1"]) == 0
    rows = json.loads(capsys.readouterr().out)
    at = (setup - timedelta(hours=2)).isoformat().replace("+00:00", "Z")
    assert rows == [
        {
            "workflow": "support-bot",
            "kind": "model",
            "before": "gpt-4o-2024-08-06",
            "after": "gpt-4o-2024-11-20",
            "at": at,
            "source": "runs",
        }
    ]


def test_changes_of_an_unknown_workflow_says_so(
    setup: datetime, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["changes", "--workflow", "nope"]) == 1
    assert "No workflow 'nope'" in capsys.readouterr().err
