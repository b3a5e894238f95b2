"""The real `ai-incident serve` SIGKILLed between two escalation steps resumes correctly.

Step 1 pages Ben (Slack DM and PagerDuty) as the P1 opens; the bot is killed during the 20-second
wait; a new process on the same database pages Ann (step 2) once, not before the wait is over,
and never pages Ben again.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from tests.standins.paging import PagerDutyStandin
from tests.standins.slack import SlackStandin
from tests.support.process import WEBHOOK_TOKEN, BotProcess

pytestmark = pytest.mark.slow

KEY = "R0UTINGKEY0000000000000000000001"
ANN, BEN = "U0ANN0001", "U0BEN0002"
POLICY = f"""\
timezone: UTC
people:
  ann: {{name: Ann, slack_id: {ANN}}}
  ben: {{name: Ben, slack_id: {BEN}}}
roles:
  ai_lead: [ann]
default_workflow: bots
workflows:
  bots: {{channel: C0BOTSBOTS1, escalation_policy: fast}}
escalation_policies:
  fast:
    steps:
      - notify: [{{person: ben}}]
        channels: [slack_dm, pagerduty]
        wait: 20s
      - notify: [{{person: ann}}]
        channels: [slack_dm]
        wait: 1h
paging:
  pagerduty_routing_key: {KEY}
"""


def wait_until(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def due_outbox_rows(url: str) -> list[int]:
    """Outbox rows waiting for delivery whose time has come."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                sa.text(
                    "SELECT id, next_attempt_at FROM outbox WHERE status IN ('pending', 'in_flight')"
                )
            ).all()
    finally:
        engine.dispose()
    now = datetime.now(UTC)
    return [
        int(row_id)
        for row_id, at in rows
        if datetime.fromisoformat(str(at)).replace(tzinfo=UTC) <= now
    ]


def test_sigkill_between_steps_then_restart_pages_the_next_step_once(tmp_path: Path) -> None:
    (tmp_path / "ai-incident.yml").write_text(POLICY, encoding="utf-8")
    url = f"sqlite:///{tmp_path / 'bot.db'}"
    with SlackStandin() as slack, PagerDutyStandin(routing_keys={KEY}) as pd:
        env = {
            "SLACK_BOT_TOKEN": "xoxb-test",
            "SLACK_API_URL": slack.url,
            "PAGERDUTY_EVENTS_URL": pd.url,
        }

        def dms(user: str) -> list[dict[str, object]]:
            return slack.dm_messages(user)

        first = BotProcess(database_url=url, workdir=tmp_path, env=env).start()
        try:
            body = {
                "dedup_key": "k",
                "status": "firing",
                "title": "Bots answer nonsense",
                "signal": {"kind": "error_rate", "value": 0.5},
            }
            r = httpx.post(
                f"{first.url}/webhooks/alerts",
                json=body,
                headers={"Authorization": f"Bearer {WEBHOOK_TOKEN}"},
                timeout=15,
            )
            assert r.status_code == 202 and r.json()["incident"] == "INC-1"
            # step 1 and the AI lead's notice go out at once
            wait_until(lambda: len(dms(BEN)) == 1 and len(pd.events("trigger")) == 1, 15, "step 1")
            wait_until(lambda: len(dms(ANN)) == 1, 15, "the AI lead's notice")
        finally:
            first.kill()  # mid-wait, no shutdown
        engine = sa.create_engine(url)
        with engine.connect() as conn:
            step, next_at = conn.execute(sa.text("SELECT step, next_at FROM escalation")).one()
        engine.dispose()
        assert step == 1
        due = datetime.fromisoformat(str(next_at)).replace(tzinfo=UTC).timestamp()

        second = BotProcess(database_url=url, workdir=tmp_path, env=env).start()
        try:
            # the scheduler looks every 15 s: step 2 is due 20 s after step 1 fired
            wait_until(lambda: len(dms(ANN)) == 2, 60, "step 2 after the restart")
            # anything else the restart made due (a repeated step 1, say) is delivered by then
            wait_until(lambda: not due_outbox_rows(url), 15, "the outbox to hold nothing due")
        finally:
            second.stop()
        step_two = dms(ANN)[1]
        assert "escalation step 2 of 2" in str(step_two["text"])
        assert Decimal(str(step_two["ts"])) >= Decimal(due), "step 2 fired before its wait was over"
        assert len(dms(BEN)) == 1 and len(pd.events("trigger")) == 1  # step 1 not repeated
        assert len(dms(ANN)) == 2
        assert "Traceback" not in first.output() + second.output()
        slack.assert_no_violations()
        pd.assert_no_violations()
