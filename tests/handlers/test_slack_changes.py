"""`/ai-incident changes [workflow]` in Slack: the change log, newest first, in Block Kit."""

from __future__ import annotations

from datetime import timedelta

from bot.domain.watch.history import Run
from storage.db import session_scope
from storage.watch import record_runs
from tests.conftest import Bot
from tests.handlers.test_slack_watch import answer, section_texts
from tests.standins.slack import SlackStandin


def runs(bot: Bot) -> None:
    now = bot.clock()
    found = [
        Run("email-summarizer", "a", now - timedelta(days=40), model="gpt-4o-2024-05-13"),
        Run("email-summarizer", "b", now - timedelta(days=2), model="gpt-4o-2024-08-06"),
        Run("email-summarizer", "c", now - timedelta(hours=3), prompt_version="summary-v12"),
        Run("email-summarizer", "d", now - timedelta(hours=1), prompt_version="summary-v13"),
        Run("support-chatbot", "e", now - timedelta(hours=2), model="claude-sonnet"),
    ]
    with session_scope(bot.container.engine) as session:
        record_runs(session, found)


def test_changes_lists_every_workflows_changes_of_the_last_30_days(
    sbot: Bot, slack: SlackStandin
) -> None:
    runs(sbot)
    response = answer(sbot, slack, "changes")
    title, lines = section_texts(response)
    assert title == "*Changes in the last 30 days*"
    listed = lines.splitlines()
    assert len(listed) == 4  # the first model, 40 days ago, is past the 30 days
    assert "email-summarizer: prompt summary-v12 → summary-v13 (seen in runs)" in listed[0]
    assert "support-chatbot: model claude-sonnet (first seen)" in listed[1]
    assert "email-summarizer: model gpt-4o-2024-05-13 → gpt-4o-2024-08-06" in listed[3]
    assert "summary-v13" in response["text"]


def test_changes_of_one_workflow_and_of_an_unknown_one(sbot: Bot, slack: SlackStandin) -> None:
    runs(sbot)
    title, lines = section_texts(answer(sbot, slack, "changes Support-Chatbot"))
    assert title == "*Changes of support-chatbot in the last 30 days*"
    assert len(lines.splitlines()) == 1 and "model claude-sonnet (first seen)" in lines
    assert "support-chatbot:" not in lines  # one workflow: its name is in the title
    text = answer(sbot, slack, "changes no-such-flow")["text"]
    assert text.startswith("No workflow named no-such-flow has been seen; known: ")
    assert "email-summarizer" in text


def test_changes_says_so_when_nothing_changed(sbot: Bot, slack: SlackStandin) -> None:
    response = answer(sbot, slack, "changes email-summarizer")
    assert response["text"] == (
        "No model or prompt version of email-summarizer changed in the last 30 days."
    )
    assert "changes [workflow]" in answer(sbot, slack, "help")["text"]
