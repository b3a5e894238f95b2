"""Fixtures for the Slack edges: the Web API stand-in and a bot in Slack mode.

The Slack edges are not about the database: their bots run on SQLite only (`sqlite_url`), and the
database's own behaviour is tested where it is the subject, on both backends (`db_url`). The
stand-in does not limit the rate, so posts to a channel are not paced either.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.settings import Settings
from tests.conftest import TOKEN, Bot, make_bot
from tests.standins.slack import SlackStandin
from tests.support.databases import database
from tests.support.slack_requests import SECRET


@pytest.fixture
def sqlite_url(tmp_path: Path) -> Iterator[str]:
    """An empty SQLite database URL, for tests whose subject is not the database."""
    with database("sqlite", tmp_path) as url:
        yield url


@pytest.fixture
def sbot(sqlite_url: str, slack: SlackStandin) -> Iterator[Bot]:
    settings = Settings(
        database_url=sqlite_url,
        ai_incident_webhook_token=TOKEN,
        slack_bot_token="xoxb-test",
        slack_signing_secret=SECRET,
        slack_api_url=slack.url,
    )
    b = make_bot(sqlite_url, settings=settings, slack_interval_s=0)
    with b.client:
        yield b
    b.container.engine.dispose()
