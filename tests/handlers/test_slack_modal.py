"""`/ai-incident declare` with no arguments: the declare form, opened and submitted over HTTP."""

from __future__ import annotations

import json
import time
from typing import Any
from urllib.parse import urlencode

from slack_sdk.models.views import View
from sqlmodel import Session, select

from bot.rendering.cards import DECLARE_VIEW_ID, declare_modal
from storage.models import IncidentRow
from tests.conftest import Bot
from tests.standins.slack import SlackStandin
from tests.support.slack_requests import ALICE, SUMMARY_CHANNEL, signed

TRIGGER = "13345224609.738474920.8088930838d88f008e0"


def command_body(slack: SlackStandin, text: str, token: str) -> str:
    return urlencode(
        {
            "token": "legacy-verification-token",
            "team_id": "T0001",
            "team_domain": "example",
            "channel_id": SUMMARY_CHANNEL,
            "channel_name": "ai-summarizer",
            "user_id": ALICE,
            "user_name": "alice",
            "command": "/ai-incident",
            "text": text,
            "api_app_id": "A0001",
            "response_url": slack.response_url(token),
            "trigger_id": TRIGGER,
        }
    )


def post(bot: Bot, body: str) -> Any:
    started = time.monotonic()
    r = bot.client.post("/slack/events", content=body, headers=signed(body))
    assert r.status_code == 200, r.text
    assert time.monotonic() - started < 3.0  # Slack's ack deadline
    return r


def wait(check: Any) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.02)
    raise AssertionError("condition not reached")


def submission(
    view: dict[str, Any],
    *,
    title: str,
    severity: str | None,
    workflow: str | None,
    reason: str | None,
    user: str = ALICE,
) -> str:
    """A `view_submission` payload for `view` (as views.open returned it), filled in."""

    def selected(value: str | None) -> dict[str, Any]:
        option = (
            None
            if value is None
            else {"text": {"type": "plain_text", "text": value}, "value": value}
        )
        return {"type": "static_select", "selected_option": option}

    values = {
        "declare_title": {"title": {"type": "plain_text_input", "value": title}},
        "declare_severity": {"severity": selected(severity)},
        "declare_workflow": {"workflow": selected(workflow)},
        "declare_reason": {"reason": {"type": "plain_text_input", "value": reason}},
    }
    body = {
        "type": "view_submission",
        "team": {"id": "T0001", "domain": "example"},
        "user": {"id": user, "username": "alice", "name": "alice", "team_id": "T0001"},
        "api_app_id": "A0001",
        "token": "legacy",
        "trigger_id": "13345224609.738474920.8088930838d88f008e1",
        "view": {**view, "state": {"values": values}},
        "response_urls": [],
        "is_enterprise_install": False,
        "enterprise": None,
    }
    return urlencode({"payload": json.dumps(body)})


def open_form(bot: Bot, slack: SlackStandin) -> dict[str, Any]:
    post(bot, command_body(slack, "declare", "M1"))
    wait(lambda: any(c.ok for c in slack.calls("views.open")))
    [call] = slack.calls("views.open")
    assert call.params["trigger_id"] == TRIGGER
    assert call.response is not None
    view: dict[str, Any] = call.response["view"]
    assert view["id"].startswith("V")
    return view


def incidents(bot: Bot) -> list[IncidentRow]:
    with Session(bot.container.engine) as s:
        return list(s.exec(select(IncidentRow)).all())


def test_the_declare_form_is_a_valid_modal() -> None:
    view = declare_modal(["email-summarizer", "support-chatbot"], SUMMARY_CHANNEL)
    View(**view).validate_json()
    assert view["callback_id"] == DECLARE_VIEW_ID
    assert json.loads(view["private_metadata"]) == {"channel": SUMMARY_CHANNEL}
    View(**declare_modal([], SUMMARY_CHANNEL)).validate_json()  # no workflow select at all


def test_declare_without_arguments_opens_the_form_and_submitting_declares(
    sbot: Bot, slack: SlackStandin
) -> None:
    view = open_form(sbot, slack)
    sent = slack.calls("views.open")[0].params["view"]
    parsed = View(**sent)
    parsed.validate_json()
    assert parsed.type == "modal" and parsed.callback_id == DECLARE_VIEW_ID
    assert json.loads(parsed.private_metadata or "") == {"channel": SUMMARY_CHANNEL}
    workflow_block = next(b for b in sent["blocks"] if b["block_id"] == "declare_workflow")
    offered = [o["value"] for o in workflow_block["element"]["options"]]
    assert "support-chatbot" in offered
    assert slack.responses("M1") == []  # the form is the answer

    body = submission(
        view,
        title="Chatbot promises refunds",
        severity="P2",
        workflow="support-chatbot",
        reason="customers quote the bot",
    )
    r = post(sbot, body)
    assert r.text == ""  # the modal closes
    wait(lambda: len(incidents(sbot)) == 1)
    [inc] = incidents(sbot)
    assert inc.title == "Chatbot promises refunds"
    assert inc.severity == "P2" and inc.workflow == "support-chatbot"
    assert inc.source == f"declared:{ALICE}"
    assert "customers quote the bot" in inc.severity_reasons[0]["text"]
    wait(lambda: slack.ephemerals(SUMMARY_CHANNEL))
    [note] = slack.ephemerals(SUMMARY_CHANNEL)
    assert note["user"] == ALICE
    assert note["text"] == "Declared INC-1 (P2) in workflow support-chatbot."


def test_the_form_defaults_to_p3_and_the_default_workflow(sbot: Bot, slack: SlackStandin) -> None:
    view = open_form(sbot, slack)
    post(sbot, submission(view, title="Odd summaries", severity=None, workflow=None, reason=None))
    wait(lambda: len(incidents(sbot)) == 1)
    [inc] = incidents(sbot)
    assert inc.title == "Odd summaries" and inc.severity == "P3"
    assert inc.workflow == sbot.container.policy.default_workflow


def test_an_empty_title_is_refused_inside_the_form(sbot: Bot, slack: SlackStandin) -> None:
    view = open_form(sbot, slack)
    r = post(sbot, submission(view, title="   ", severity="P1", workflow=None, reason=None))
    answer = r.json()
    assert answer["response_action"] == "errors"
    assert set(answer["errors"]) == {"declare_title"}
    time.sleep(0.2)
    assert incidents(sbot) == []


def test_when_the_form_cannot_open_the_user_is_told_how_to_type_it(
    sbot: Bot, slack: SlackStandin
) -> None:
    slack.fail_next("views.open", error="expired_trigger_id")
    post(sbot, command_body(slack, "declare", "M2"))
    wait(lambda: slack.responses("M2"))
    [answer] = slack.responses("M2")
    assert answer["response_type"] == "ephemeral"
    assert "/ai-incident declare <title> [P1|P2|P3] [workflow]" in answer["text"]
    assert [c.response for c in slack.calls("views.open")] == [
        {"ok": False, "error": "expired_trigger_id"}
    ]
    assert incidents(sbot) == []
