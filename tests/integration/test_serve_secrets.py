"""The real `ai-incident serve --access-log` in local mode keeps secrets out of its output and files.

One process: weak secrets are warned about (local mode accepts them), the banner does not print a
real webhook token, the access log hides Jira's `?secret=`, httpx's request line hides the
credentials of the paging webhook URL, and the SQLite files are readable by their owner only.
"""

from __future__ import annotations

import shutil
import stat
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.conftest import EXAMPLE
from tests.standins.paging import WebhookReceiver
from tests.support.process import EXAMPLE_SECRETS, BotProcess

pytestmark = pytest.mark.slow

REAL_TOKEN = "real-webhook-token-6b0f3c9e2d"
PAGING_SECRET = "paging-signing-key-1f7e2c"
PAGER_PASSWORD = "pager-password-83d1"
PAGER_TOKEN = "pager-query-token-c29a"
SHORT = "short"


@dataclass
class Run:
    output: str
    workdir: Path
    jira_status: int
    receiver_url: str


def wait_until(check: Callable[[], bool], what: Callable[[], str], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out: {what()}")


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    workdir = tmp_path_factory.mktemp("serve")
    shutil.copy(EXAMPLE, workdir / "ai-incident.yml")
    with WebhookReceiver(secret=PAGING_SECRET) as receiver:
        host = receiver.base_url.removeprefix("http://")
        pager_url = f"http://pager:{PAGER_PASSWORD}@{host}/page?token={PAGER_TOKEN}"
        bot = BotProcess(
            database_url=f"sqlite:///{workdir / 'bot.db'}",
            workdir=workdir,
            args=["--access-log"],
            env={
                "SLACK_BOT_TOKEN": "",
                "AI_INCIDENT_WEBHOOK_TOKEN": REAL_TOKEN,
                "LLM_OBS_WEBHOOK_TOKEN": SHORT,
                "PAGING_WEBHOOK_URL": pager_url,
                "PAGING_WEBHOOK_SECRET": PAGING_SECRET,
            },
        )
        bot.start()
        try:
            jira = httpx.post(
                f"{bot.url}/webhooks/jira?secret={EXAMPLE_SECRETS['JIRA_WEBHOOK_SECRET']}",
                json={"webhookEvent": "jira:issue_updated"},
                timeout=15,
            )
            # a P1 on a customer-facing workflow pages at once, through the webhook among others
            alert = {
                "dedup_key": "chatbot-errors",
                "status": "firing",
                "title": "Support chatbot error rate",
                "workflow": "support-chatbot",
                "signal": {"kind": "error_rate", "value": 0.5},
            }
            answer = httpx.post(
                f"{bot.url}/webhooks/alerts",
                json=alert,
                headers={"Authorization": f"Bearer {REAL_TOKEN}"},
                timeout=15,
            )
            assert answer.status_code == 202, answer.text
            wait_until(
                lambda: bool(receiver.received) and "HTTP Request: POST" in bot.output(),
                lambda: f"a page at the webhook and its request line:\n{bot.output()}",
            )
            receiver.assert_no_violations()
            yield Run(bot.output(), workdir, jira.status_code, pager_url)
        finally:
            bot.stop()


def test_local_mode_warns_about_each_weak_secret_and_starts(run: Run) -> None:
    warning = (
        f"WARNING bot: weak secret, accepted in local mode only: {run.workdir / 'ai-incident.yml'}:"
    )
    lines = [line for line in run.output.splitlines() if warning in line]
    assert len(lines) == 1, run.output
    assert (
        "sources.llm-observability.token: is only 5 characters long; set LLM_OBS_WEBHOOK_TOKEN"
        in lines[0]
    )


def test_the_banner_does_not_print_a_real_webhook_token(run: Run) -> None:
    assert "LOCAL MODE" in run.output
    assert "Webhook token: from AI_INCIDENT_WEBHOOK_TOKEN (not shown)" in run.output
    assert REAL_TOKEN not in run.output


def test_the_access_log_hides_the_jira_secret(run: Run) -> None:
    secret = EXAMPLE_SECRETS["JIRA_WEBHOOK_SECRET"]
    assert f'"POST /webhooks/jira?secret=[REDACTED] HTTP/1.1" {run.jira_status}' in run.output
    assert '"POST /webhooks/alerts HTTP/1.1" 202' in run.output
    assert secret not in run.output


def test_request_lines_hide_the_credentials_of_outgoing_urls(run: Run) -> None:
    port = run.receiver_url.rsplit(":", 1)[1].split("/")[0]
    assert (
        f"HTTP Request: POST http://[REDACTED]@127.0.0.1:{port}/page?token=[REDACTED] "
        '"HTTP/1.1 200 OK"'
    ) in run.output
    assert PAGER_PASSWORD not in run.output and PAGER_TOKEN not in run.output


def test_the_sqlite_files_are_readable_by_their_owner_only(run: Run) -> None:
    files = sorted(run.workdir.glob("bot.db*"))
    assert [f.name for f in files] == ["bot.db", "bot.db-shm", "bot.db-wal"]
    assert {f.name: stat.S_IMODE(f.stat().st_mode) for f in files} == {f.name: 0o600 for f in files}
