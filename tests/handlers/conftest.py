"""Fixtures for the Slack edges: the Web API stand-in and a bot in Slack mode."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bot.settings import Settings
from tests.conftest import TOKEN, Bot, make_bot
from tests.standins.slack import SlackStandin
from tests.support.slack_requests import SECRET


@pytest.fixture
def sbot(db_url: str, slack: SlackStandin) -> Iterator[Bot]:
    settings = Settings(
        database_url=db_url,
        ai_incident_webhook_token=TOKEN,
        slack_bot_token="xoxb-test",
        slack_signing_secret=SECRET,
        slack_api_url=slack.url,
    )
    b = make_bot(db_url, settings=settings)
    with b.client:
        yield b
    b.container.engine.dispose()
