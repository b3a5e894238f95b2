"""`/ai-incident` over HTTP, signed the way Slack signs, answered through response_url."""

from __future__ import annotations

import time
from urllib.parse import urlencode

from sqlmodel import Session, select

from storage.models import IncidentRow, JournalRow
from tests.conftest import Bot, payload
from tests.standins.slack import SlackStandin
from tests.support.slack_requests import ALICE, CAROL, SUMMARY_CHANNEL, signed


def command_body(slack: SlackStandin, text: str, user: str = ALICE, token: str = "R1") -> str:
    return urlencode(
        {
            "token": "legacy-verification-token",
            "team_id": "T0001",
            "team_domain": "example",
            "channel_id": SUMMARY_CHANNEL,
            "channel_name": "ai-summarizer",
            "user_id": user,
            "user_name": "alice",
            "command": "/ai-incident",
            "text": text,
            "api_app_id": "A0001",
            "response_url": slack.response_url(token),
            "trigger_id": "13345224609.738474920.8088930838d88f008e0",
        }
    )


def run(bot: Bot, slack: SlackStandin, text: str, user: str = ALICE) -> str:
    token = f"R{len(slack.responses()) + 1}"
    body = command_body(slack, text, user, token)
    started = time.monotonic()
    r = bot.client.post("/slack/events", content=body, headers=signed(body))
    assert r.status_code == 200, r.text
    assert time.monotonic() - started < 3.0  # Slack's ack deadline
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        answers = slack.responses(token)
        if answers:
            assert answers[0]["response_type"] == "ephemeral"
            return str(answers[0]["text"])
        time.sleep(0.02)
    raise AssertionError(f"no answer to {text!r}")


def incident(bot: Bot) -> IncidentRow:
    with Session(bot.container.engine) as s:
        return s.exec(select(IncidentRow)).one()


def test_bad_or_stale_signatures_are_401_and_do_nothing(sbot: Bot, slack: SlackStandin) -> None:
    body = command_body(slack, "declare Should not exist P1")
    for headers in (
        signed(body, secret="wrong"),
        signed(body, at=int(time.time()) - 6 * 60),
        {"Content-Type": "application/x-www-form-urlencoded"},
    ):
        r = sbot.client.post("/slack/events", content=body, headers=headers)
        assert r.status_code == 401
    with Session(sbot.container.engine) as s:
        assert s.exec(select(IncidentRow)).all() == []


def test_help_and_unknown_input(sbot: Bot, slack: SlackStandin) -> None:
    assert "/ai-incident declare" in run(sbot, slack, "help")
    answer = run(sbot, slack, "frobnicate now")
    assert answer.startswith("I don't know `frobnicate`") and "/ai-incident ack" in answer
    assert run(sbot, slack, "handoffs") == "No handoffs are waiting for review."


def test_acknowledge_note_severity_and_resolve_from_slack(sbot: Bot, slack: SlackStandin) -> None:
    assert (
        sbot.post("/webhooks/alertmanager", payload("alertmanager_v4_firing.json")).status_code
        == 202
    )
    # the channel has exactly one open incident, so the id may be left out
    assert "You acknowledged INC-1" in run(sbot, slack, "ack")
    inc = incident(sbot)
    assert inc.state == "acknowledged" and inc.commander == ALICE
    assert "Noted" in run(sbot, slack, "note INC-1 retries are piling up")
    assert "1 open incident" in run(sbot, slack, "list")
    assert "state acknowledged" in run(sbot, slack, "status")
    refusal = run(sbot, slack, "sev P3 looks fine", user=CAROL)
    assert refusal.startswith("Only responders")
    assert incident(sbot).severity == "P1"
    assert "needs a reason" in run(sbot, slack, "sev INC-1 P2")
    assert "recorded" in run(sbot, slack, "rootcause provider outage at 08:20")
    assert "resolved" in run(sbot, slack, "resolve INC-1 provider recovered")
    inc = incident(sbot)
    assert inc.state == "resolved" and inc.root_cause == "provider outage at 08:20"
    with Session(sbot.container.engine) as s:
        texts = [e.text for e in s.exec(select(JournalRow)).all()]
    assert "retries are piling up" in texts
    assert "This channel has no open incident" in run(sbot, slack, "ack")


def test_declare_from_slack(sbot: Bot, slack: SlackStandin) -> None:
    answer = run(sbot, slack, 'declare "Chatbot promises refunds" P2 support-chatbot')
    assert answer == "Declared INC-1 (P2) in workflow support-chatbot."
    inc = incident(sbot)
    assert inc.title == "Chatbot promises refunds" and inc.severity == "P2"


def test_a_command_is_acknowledged_while_slack_is_slow(sbot: Bot, slack: SlackStandin) -> None:
    slack.set_delay(2.0)
    body = command_body(slack, "help")
    started = time.monotonic()
    r = sbot.client.post("/slack/events", content=body, headers=signed(body))
    assert r.status_code == 200 and time.monotonic() - started < 1.0


def test_a_member_of_a_responder_user_group_may_resolve(sbot: Bot, slack: SlackStandin) -> None:
    # the example policy lists group:S0RESPOND1 under responders; Carol is not listed by name
    slack.add_usergroup("S0RESPOND1", [CAROL])
    assert (
        sbot.post("/webhooks/alertmanager", payload("alertmanager_v4_firing.json")).status_code
        == 202
    )
    assert run(sbot, slack, "resolve INC-1 fixed upstream", user=CAROL) == "INC-1 is resolved."
    assert incident(sbot).resolved_by == CAROL
    assert slack.calls("usergroups.users.list")
