"""Socket Mode: with SLACK_APP_TOKEN the bot opens the websocket and answers commands over it."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from bot.settings import Settings
from tests.conftest import TOKEN, Bot, make_bot
from tests.standins.slack import SlackStandin
from tests.support.slack_requests import ALICE


@pytest.fixture
def socket_bot(sqlite_url: str, slack: SlackStandin) -> Iterator[Bot]:
    settings = Settings(
        database_url=sqlite_url,
        ai_incident_webhook_token=TOKEN,
        slack_bot_token="xoxb-test",
        slack_app_token="xapp-1-A0001-test",
        slack_api_url=slack.url,
    )
    b = make_bot(sqlite_url, settings=settings, slack_interval_s=0)
    with b.client:
        yield b
    b.container.engine.dispose()


def wait(check: Any, what: str) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def test_a_slash_command_over_socket_mode(socket_bot: Bot, slack: SlackStandin) -> None:
    wait(slack.socket_connected, "the Socket Mode connection")
    assert slack.calls("apps.connections.open")
    # no signing secret, no HTTP route: Slack's traffic arrives over the socket only
    assert socket_bot.client.post("/slack/events", content=b"{}").status_code == 404
    slack.socket_send(
        {
            "envelope_id": "env-1",
            "type": "slash_commands",
            "accepts_response_payload": True,
            "payload": {
                "command": "/ai-incident",
                "text": 'declare "Summaries in the wrong language" P2 email-summarizer',
                "user_id": ALICE,
                "channel_id": "C0SUMMARY01",
                "team_id": "T0001",
                "response_url": slack.response_url("S1"),
                "trigger_id": "1.2.3",
            },
        }
    )
    wait(lambda: any(a.get("envelope_id") == "env-1" for a in slack.socket_acks()), "the ack")
    wait(lambda: slack.responses("S1"), "the answer")
    assert slack.responses("S1")[0]["text"] == "Declared INC-1 (P2) in workflow email-summarizer."
