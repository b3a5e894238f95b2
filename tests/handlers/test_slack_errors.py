"""The Bolt app's one error handler: a listener that raises still answers the user, never a trace.

Driven through Bolt itself (no HTTP, no database): the services are fakes that raise, Slack is
the stand-in, and the answers arrive at its response_url or as ephemeral messages.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import Any, cast
from urllib.parse import urlencode

import pytest
from slack_bolt import App, BoltRequest
from slack_sdk import WebClient

from bot.domain.commands import CommandError
from bot.handoffs.runner import HandoffRunner
from bot.rendering.cards import ACK_ACTION_ID, DECLARE_VIEW_ID
from bot.rendering.handoffs import REJECT_REASON_ACTION, REJECT_REASON_BLOCK, REJECT_VIEW_ID
from bot.services.commands import CommandRunner, Invocation
from bot.services.errors import NotAResponder
from handlers.slack.app import build_bolt_app
from handlers.slack.errors import FAILED, UNAVAILABLE
from storage.db import StorageUnavailable
from tests.standins.slack import SlackStandin
from tests.support.slack_requests import ALICE, SUMMARY_CHANNEL


class RaisingRunner:
    """The command runner's surface, each use case raising `error`."""

    workflows = ["email-summarizer"]

    def __init__(self, error: Exception) -> None:
        self.error = error
        self.calls: list[str] = []

    def run(self, inv: Invocation) -> str:
        self.calls.append(inv.text)
        raise self.error

    def answer(self, inv: Invocation) -> Any:
        self.calls.append(inv.text)
        raise self.error

    def press(self, **kwargs: Any) -> str | None:
        self.calls.append(str(kwargs["action"]))
        raise self.error

    def declare_from_modal(self, **kwargs: Any) -> str:
        self.calls.append(str(kwargs["title"]))
        raise self.error

    def thread_message(self, event: dict[str, Any]) -> None:
        self.calls.append(str(event.get("text")))
        raise self.error

    def decide(self, **kwargs: Any) -> Any:
        self.calls.append(str(kwargs["reason"]))
        raise self.error


def bolt(slack: SlackStandin, runner: RaisingRunner) -> App:
    return build_bolt_app(
        client=WebClient(token="xoxb-test", base_url=slack.url),
        commands=cast(CommandRunner, runner),
        handoffs=cast(HandoffRunner, runner),
    )


def dispatch(app: App, body: str, content_type: str) -> int:
    answer = app.dispatch(BoltRequest(body=body, headers={"content-type": content_type}, query={}))
    return answer.status


def until(check: Callable[[], Any]) -> Any:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if found := check():
            return found
        time.sleep(0.01)
    raise AssertionError("no answer reached Slack")


def command(slack: SlackStandin, text: str, token: str) -> str:
    return urlencode(
        {
            "team_id": "T0001",
            "channel_id": SUMMARY_CHANNEL,
            "user_id": ALICE,
            "command": "/ai-incident",
            "text": text,
            "api_app_id": "A0001",
            "response_url": slack.response_url(token),
            "trigger_id": "",
        }
    )


def button(slack: SlackStandin, token: str) -> str:
    body = {
        "type": "block_actions",
        "team": {"id": "T0001"},
        "user": {"id": ALICE},
        "api_app_id": "A0001",
        "channel": {"id": SUMMARY_CHANNEL},
        "container": {"type": "message", "message_ts": "1700000000.000100"},
        "response_url": slack.response_url(token),
        "trigger_id": "1.2.3",
        "actions": [
            {"action_id": ACK_ACTION_ID, "value": "7", "type": "button", "action_ts": "1.2"}
        ],
    }
    return urlencode({"payload": json.dumps(body)})


def submission(callback_id: str, state: dict[str, Any], metadata: dict[str, Any]) -> str:
    body = {
        "type": "view_submission",
        "team": {"id": "T0001"},
        "user": {"id": ALICE},
        "api_app_id": "A0001",
        "view": {
            "id": "V1",
            "type": "modal",
            "callback_id": callback_id,
            "private_metadata": json.dumps(metadata),
            "state": {"values": state},
        },
    }
    return urlencode({"payload": json.dumps(body)})


FORM = "application/x-www-form-urlencoded"


def test_a_bug_behind_a_button_is_logged_with_its_trace_and_the_user_told_so(
    slack: SlackStandin, caplog: pytest.LogCaptureFixture
) -> None:
    runner = RaisingRunner(RuntimeError("boom at line 12"))
    with caplog.at_level(logging.ERROR, logger="handlers.slack.errors"):
        assert dispatch(bolt(slack, runner), button(slack, "E1"), FORM) == 200  # acked first
        [answer] = until(lambda: slack.responses("E1"))
    assert answer["text"] == FAILED["block_actions"] and "boom" not in answer["text"]
    assert answer["response_type"] == "ephemeral" and answer["replace_original"] is False
    [record] = [r for r in caplog.records if r.name == "handlers.slack.errors"]
    assert record.exc_info is not None and "boom at line 12" in str(record.exc_info[1])
    assert runner.calls == ["ack"]


def test_a_refusal_a_use_case_raises_is_the_answer_and_no_trace_is_logged(
    slack: SlackStandin, caplog: pytest.LogCaptureFixture
) -> None:
    refusal = NotAResponder(ALICE, "acknowledge")
    with caplog.at_level(logging.INFO, logger="handlers.slack.errors"):
        dispatch(bolt(slack, RaisingRunner(refusal)), command(slack, "ack INC-7", "E2"), FORM)
        [answer] = until(lambda: slack.responses("E2"))
    assert answer["text"] == str(refusal) and answer["response_type"] == "ephemeral"
    assert all(r.exc_info is None for r in caplog.records if r.name == "handlers.slack.errors")


def test_a_command_error_is_answered_with_its_usage(slack: SlackStandin) -> None:
    error = CommandError("Name the incident.", "ack INC-7")
    dispatch(bolt(slack, RaisingRunner(error)), command(slack, "ack", "E3"), FORM)
    [answer] = until(lambda: slack.responses("E3"))
    assert answer["text"] == "Name the incident.\nUsage: `ack INC-7`"


def test_a_database_that_does_not_answer_is_said_to_be_unavailable(slack: SlackStandin) -> None:
    runner = RaisingRunner(StorageUnavailable("write lock not taken within 10 s"))
    dispatch(bolt(slack, runner), command(slack, "status", "E4"), FORM)
    [answer] = until(lambda: slack.responses("E4"))
    assert answer["text"] == UNAVAILABLE and "lock" not in answer["text"]


def test_a_form_that_fails_after_closing_is_answered_ephemerally_in_its_channel(
    slack: SlackStandin,
) -> None:
    runner = RaisingRunner(RuntimeError("boom"))
    app = bolt(slack, runner)
    title = {"declare_title": {"title": {"type": "plain_text_input", "value": "Outage"}}}
    body = submission(DECLARE_VIEW_ID, title, {"channel": SUMMARY_CHANNEL})
    assert dispatch(app, body, FORM) == 200  # the modal closes: the ack came first
    [told] = until(lambda: slack.ephemerals())
    assert told["text"] == FAILED[DECLARE_VIEW_ID] and told["user"] == ALICE
    reason = {REJECT_REASON_BLOCK: {REJECT_REASON_ACTION: {"type": "x", "value": "wrong"}}}
    started = time.monotonic()
    rejected = submission(REJECT_VIEW_ID, reason, {"handoff": 3, "channel": "C0REVIEW01"})
    assert dispatch(app, rejected, FORM) == 200
    # the ack is not lost when the work fails right after it (Bolt would wait out 3 s)
    assert time.monotonic() - started < 2.0
    until(lambda: len(slack.ephemerals()) == 2)
    assert slack.ephemerals()[1]["text"] == FAILED[REJECT_VIEW_ID]
    assert runner.calls == ["Outage", "wrong"]


def test_an_event_that_fails_is_logged_and_answers_nobody(
    slack: SlackStandin, caplog: pytest.LogCaptureFixture
) -> None:
    runner = RaisingRunner(RuntimeError("boom"))
    event = {
        "team_id": "T0001",
        "api_app_id": "A0001",
        "type": "event_callback",
        "event_id": "Ev1",
        "event_time": 1,
        "event": {"type": "message", "channel": SUMMARY_CHANNEL, "user": ALICE, "text": "hi"},
    }
    with caplog.at_level(logging.ERROR, logger="handlers.slack.errors"):
        assert dispatch(bolt(slack, runner), json.dumps(event), "application/json") == 200
        until(lambda: [r for r in caplog.records if r.name == "handlers.slack.errors"])
    assert runner.calls == ["hi"]
    assert slack.responses() == [] and slack.ephemerals() == []
