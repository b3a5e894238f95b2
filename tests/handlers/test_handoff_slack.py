"""Handoffs end to end: webhook in → review card in Slack → signed buttons and modals → the
decision POSTed to the agent's callback stand-in, verified with the README's snippet."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

import pytest
from slack_sdk.models.blocks import Block
from slack_sdk.models.views import View
from sqlmodel import Session, select

from bot.domain.redaction import WORD_JOINER
from bot.settings import Settings
from storage.models import OutboxRow
from tests.conftest import AUTH, TOKEN, Bot, example_policy, make_bot
from tests.standins.agent import AgentStandin, Delivery
from tests.standins.slack import SlackStandin
from tests.support.handoffs import (
    AGENT_SECRET,
    BOB,
    REVIEW_CHANNEL,
    agent_headers,
    encoded,
    handoff_body,
    readme_verifier,
)
from tests.support.slack_requests import ALICE, CAROL, SECRET, signed

TRIGGER = "13345224609.738474920.8088930838d88f008e0"


@pytest.fixture
def agent() -> Iterator[AgentStandin]:
    with AgentStandin() as standin:
        yield standin


@pytest.fixture
def sbot(db_url: str, slack: SlackStandin) -> Iterator[Bot]:
    """A bot in Slack mode whose `agents` source may call back to the stand-in on loopback.

    Outside local mode callbacks go only to public https targets unless the policy lists
    the target, as an operator does for an agent inside their own network.
    """
    policy = example_policy()
    agents = policy.sources["agents"].model_copy(update={"callback_allow": ["127.0.0.1"]})
    settings = Settings(
        database_url=db_url,
        ai_incident_webhook_token=TOKEN,
        slack_bot_token="xoxb-test",
        slack_signing_secret=SECRET,
        slack_api_url=slack.url,
    )
    b = make_bot(
        db_url,
        policy=policy.model_copy(update={"sources": {**policy.sources, "agents": agents}}),
        settings=settings,
        slack_interval_s=0,  # the fake clock stands still while the lanes run: posts go unpaced
    )
    with b.client:
        yield b
    b.container.engine.dispose()


def wait(check: Any, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise AssertionError("condition not reached")


def send_handoff(bot: Bot, key: str = "refund-1234", **overrides: Any) -> str:
    raw = encoded(handoff_body(key, **overrides))
    r = bot.client.post("/webhooks/handoffs", content=raw, headers=agent_headers(raw))
    assert r.status_code == 202, r.text
    return str(r.json()["handoff_id"])


def card(slack: SlackStandin, handoff: str) -> dict[str, Any]:
    key = f"handoff-card:{handoff.removeprefix('HO-')}"

    def find() -> dict[str, Any] | None:
        for m in slack.messages(REVIEW_CHANNEL):
            if ((m.get("metadata") or {}).get("event_payload") or {}).get("key") == key:
                return m
        return None

    wait(lambda: find() is not None)
    found = find()
    assert found is not None
    return found


def click(
    bot: Bot,
    slack: SlackStandin,
    user: str,
    action_id: str,
    handoff: str,
    token: str,
    message_ts: str = "1700000000.000100",
) -> None:
    number = handoff.removeprefix("HO-")
    payload = {
        "type": "block_actions",
        "team": {"id": "T0001", "domain": "example"},
        "user": {"id": user, "username": "someone", "team_id": "T0001"},
        "api_app_id": "A0001",
        "token": "legacy",
        "trigger_id": TRIGGER,
        "channel": {"id": REVIEW_CHANNEL, "name": "ai-reviews"},
        "container": {"type": "message", "message_ts": message_ts, "channel_id": REVIEW_CHANNEL},
        "response_url": slack.response_url(token),
        "actions": [
            {
                "action_id": action_id,
                "block_id": f"handoff_actions:{number}",
                "value": number,
                "type": "button",
                "action_ts": "1700000001.000200",
            }
        ],
    }
    body = urlencode({"payload": json.dumps(payload)})
    started = time.monotonic()
    r = bot.client.post("/slack/events", content=body, headers=signed(body))
    assert r.status_code == 200, r.text
    assert time.monotonic() - started < 3.0  # Slack's ack deadline


def submit(bot: Bot, view: dict[str, Any], user: str, block: str, action: str, text: str) -> Any:
    payload = {
        "type": "view_submission",
        "team": {"id": "T0001", "domain": "example"},
        "user": {"id": user, "username": "someone", "name": "someone", "team_id": "T0001"},
        "api_app_id": "A0001",
        "token": "legacy",
        "trigger_id": "13345224609.738474920.8088930838d88f008e1",
        "view": {
            **view,
            "state": {"values": {block: {action: {"type": "plain_text_input", "value": text}}}},
        },
        "response_urls": [],
    }
    body = urlencode({"payload": json.dumps(payload)})
    r = bot.client.post("/slack/events", content=body, headers=signed(body))
    assert r.status_code == 200, r.text
    return r


def opened_view(slack: SlackStandin, callback_id: str) -> dict[str, Any]:
    wait(lambda: any(c.ok for c in slack.calls("views.open")))
    call = [c for c in slack.calls("views.open") if c.ok][-1]
    assert call.params["trigger_id"] == TRIGGER
    sent = call.params["view"]
    View(**sent).validate_json()
    assert sent["callback_id"] == callback_id
    assert call.response is not None
    view: dict[str, Any] = call.response["view"]
    return view


def answer(slack: SlackStandin, token: str) -> str:
    wait(lambda: slack.responses(token))
    [reply] = slack.responses(token)
    assert reply["response_type"] == "ephemeral"
    return str(reply["text"])


def verified(delivery: Delivery, secret: str = AGENT_SECRET) -> dict[str, Any]:
    """The callback as the agent sees it, once the README's snippet has accepted it."""
    verify_signature = readme_verifier()
    header = delivery.headers["x-ai-incident-signature"]
    assert verify_signature(secret, delivery.body, header), header
    assert not verify_signature("another-secret", delivery.body, header)
    assert not verify_signature(secret, delivery.body + b" ", header)
    data: dict[str, Any] = json.loads(delivery.body)
    assert delivery.headers["idempotency-key"] == data["idempotency_key"]
    return data


def blocks_are_valid(message: dict[str, Any]) -> None:
    for block in message["blocks"]:
        parsed = Block.parse(block)
        assert parsed is not None, block
        parsed.validate_json()


def action_ids(message: dict[str, Any]) -> list[str]:
    actions = [b for b in message["blocks"] if b["type"] == "actions"]
    return [e["action_id"] for b in actions for e in b["elements"]]


def thread_texts(slack: SlackStandin, message: dict[str, Any]) -> list[str]:
    return [m["text"] for m in slack.thread(REVIEW_CHANNEL, message["ts"])[1:]]


def test_the_review_card_shows_everything_and_nothing_the_agent_sent_is_live(
    sbot: Bot, slack: SlackStandin
) -> None:
    hostile = handoff_body(
        "hostile",
        request={
            "summary": "<!channel> refund now",
            "text": "@here ask <@U0ALICE001> about <https://evil.example/login|your invoice>",
            "user": "mallory@example.com",
        },
        attempted_response="Done! <!here> <!subteam^S0RESPOND1> see https://evil.example",
        error={"type": "ToolTimeout", "message": "billing timed out; ping <@U0BOB00002>"},
        suggested_actions=["@channel tell everyone", "call +49 30 1234567"],
        proposed_action={
            "name": "<https://evil.example|refund>",
            "args": {"note": "<!everyone>", "api_key": "sk-live-0123456789abcdefghijklmnop"},
        },
        context={"customer_email": "mallory@example.com"},
    )
    raw = encoded(hostile)
    assert (
        sbot.client.post("/webhooks/handoffs", content=raw, headers=agent_headers(raw)).status_code
        == 202
    )
    message = card(slack, "HO-1")
    blocks_are_valid(message)
    shown = json.dumps(message["blocks"], ensure_ascii=False) + message["text"]
    for live in (
        "<!channel>",
        "<!here>",
        "<!everyone>",
        "<!subteam",
        "<@U0ALICE001>",
        "<@U0BOB00002>",
        "<https://evil",
        "mallory@example.com",
        "sk-live-0123456789",
        "1234567",
    ):
        assert live not in shown, live
    assert f"@{WORD_JOINER}here" in shown and f"@{WORD_JOINER}channel" in shown
    text = json.dumps(message["blocks"], ensure_ascii=False)
    for part in (
        "Original request",
        "Attempted response",
        "ToolTimeout",
        "Suggested actions",
        "Proposed action",
        "Context",
        "gpt-4o",
        "refunds-v7",
        "0.62",
        "human decision",
    ):
        assert part in text, part
    assert action_ids(message) == [
        "handoff_claim",
        "handoff_approve",
        "handoff_edit",
        "handoff_reject",
        "handoff_release",
    ]


def test_claim_then_approve_reaches_the_agent_signed(
    sbot: Bot, slack: SlackStandin, agent: AgentStandin
) -> None:
    handoff = send_handoff(sbot, callback_url=agent.url)
    message = card(slack, handoff)
    # the reviewer sees where the decision goes
    assert f"*Callback to*\\n127.0.0.1:{agent.port}" in json.dumps(message["blocks"])
    click(sbot, slack, BOB, "handoff_claim", handoff, "C1", message["ts"])
    assert answer(slack, "C1").startswith(f"You claimed {handoff}; it is yours until")
    click(sbot, slack, ALICE, "handoff_claim", handoff, "C2", message["ts"])
    assert answer(slack, "C2").startswith(f"{handoff} is claimed by <@{BOB}> until")
    click(sbot, slack, CAROL, "handoff_approve", handoff, "C3", message["ts"])
    assert answer(slack, "C3").startswith("Only reviewers can decide handoffs")

    def card_says(words: str) -> bool:
        return any(words in json.dumps(c.params.get("blocks")) for c in slack.calls("chat.update"))

    wait(lambda: card_says(f"claimed by <@{BOB}>"))
    click(sbot, slack, BOB, "handoff_approve", handoff, "C4", message["ts"])
    assert "approved" in answer(slack, "C4")
    wait(lambda: agent.delivered())
    [delivery] = agent.delivered()
    decision = verified(delivery)
    assert decision["handoff_id"] == handoff and decision["decision"] == "approved"
    assert decision["output"] == handoff_body()["attempted_response"]
    assert decision["handoff_idempotency_key"] == "refund-1234"
    assert decision["idempotency_key"] == f"handoff-decision:{handoff}"
    assert decision["decided_by"] == BOB and decision["reason"] is None
    assert decision["proposed_action"]["name"] == "refund"

    wait(lambda: card_says("Approved by"))
    final = slack.messages(REVIEW_CHANNEL)[0]
    blocks_are_valid(final)
    assert action_ids(final) == []  # decided: no buttons left
    wait(lambda: any("approved by" in t for t in thread_texts(slack, message)))
    assert thread_texts(slack, message)[0].startswith(f"{handoff} claimed by <@{BOB}>")
    state = sbot.client.get(f"/handoffs/{handoff}", headers=AUTH).json()
    assert state["status"] == "approved" and state["claimed_by"] == BOB
    wait(
        lambda: sbot.client.get(f"/handoffs/{handoff}", headers=AUTH).json()["callback"][
            "delivered_at"
        ]
    )


def test_edit_and_approve_through_the_form(
    sbot: Bot, slack: SlackStandin, agent: AgentStandin
) -> None:
    handoff = send_handoff(sbot, callback_url=agent.url)
    message = card(slack, handoff)
    click(sbot, slack, ALICE, "handoff_edit", handoff, "E1", message["ts"])
    view = opened_view(slack, "handoff_edit")
    initial = view["blocks"][1]["element"]["initial_value"]
    assert initial == handoff_body()["attempted_response"]
    assert slack.responses("E1") == []  # the form is the answer

    empty = submit(sbot, view, ALICE, "handoff_output", "output", "   ")
    assert empty.json()["response_action"] == "errors"
    assert set(empty.json()["errors"]) == {"handoff_output"}
    corrected = "I refunded one charge; the other was only a pre-authorisation."
    done = submit(sbot, view, ALICE, "handoff_output", "output", corrected)
    assert done.text == ""  # the modal closes
    wait(lambda: agent.delivered())
    [delivery] = agent.delivered()
    decision = verified(delivery)
    assert decision["decision"] == decision["status"] == "edited"
    assert decision["output"] == decision["edited_output"] == corrected
    assert decision["decided_by"] == ALICE
    wait(lambda: slack.ephemerals(REVIEW_CHANNEL))
    [note] = slack.ephemerals(REVIEW_CHANNEL)
    assert note["user"] == ALICE and note["text"].startswith(f"{handoff} approved with your edit")
    state = sbot.client.get(f"/handoffs/{handoff}", headers=AUTH).json()
    assert state["decision"] == "edited" and state["edited_output"] == corrected


def test_reject_needs_a_reason_and_sends_it(
    sbot: Bot, slack: SlackStandin, agent: AgentStandin
) -> None:
    handoff = send_handoff(sbot, callback_url=agent.url)
    message = card(slack, handoff)
    click(sbot, slack, CAROL, "handoff_reject", handoff, "R0", message["ts"])
    assert answer(slack, "R0").startswith("Only reviewers can decide handoffs")
    assert slack.calls("views.open") == []
    click(sbot, slack, BOB, "handoff_reject", handoff, "R1", message["ts"])
    view = opened_view(slack, "handoff_reject")
    empty = submit(sbot, view, BOB, "handoff_reason", "reason", "")
    assert empty.json()["errors"] == {
        "handoff_reason": "Say why it is rejected; the agent receives the reason."
    }
    why = "Refunds need a billing check; <!channel> never promise two."
    submit(sbot, view, BOB, "handoff_reason", "reason", why)
    wait(lambda: agent.delivered())
    decision = verified(agent.delivered()[0])
    assert decision["decision"] == "rejected" and decision["reason"] == why
    assert decision["output"] is None and decision["proposed_action"] is None
    wait(lambda: any("rejected by" in t for t in thread_texts(slack, message)))
    [line] = [t for t in thread_texts(slack, message) if "rejected by" in t]
    assert line.startswith(f"{handoff} rejected by <@{BOB}>: Refunds need a billing check")
    assert "<!channel>" not in line


def test_release_gives_the_handoff_back(sbot: Bot, slack: SlackStandin) -> None:
    handoff = send_handoff(sbot)
    message = card(slack, handoff)
    click(sbot, slack, BOB, "handoff_release", handoff, "L0", message["ts"])
    assert answer(slack, "L0") == f"{handoff} is not claimed by you."
    click(sbot, slack, BOB, "handoff_claim", handoff, "L1", message["ts"])
    answer(slack, "L1")
    click(sbot, slack, BOB, "handoff_release", handoff, "L2", message["ts"])
    assert "back in the queue" in answer(slack, "L2")
    wait(lambda: any("released by" in t for t in thread_texts(slack, message)))
    click(sbot, slack, ALICE, "handoff_claim", handoff, "L3", message["ts"])
    assert answer(slack, "L3").startswith(f"You claimed {handoff}")


def test_the_slash_command_lists_and_claims(sbot: Bot, slack: SlackStandin) -> None:
    handoff = send_handoff(sbot)

    def command(text: str, token: str) -> str:
        body = urlencode(
            {
                "team_id": "T0001",
                "channel_id": REVIEW_CHANNEL,
                "user_id": BOB,
                "command": "/ai-incident",
                "text": text,
                "response_url": slack.response_url(token),
                "trigger_id": TRIGGER,
            }
        )
        r = sbot.client.post("/slack/events", content=body, headers=signed(body))
        assert r.status_code == 200
        return answer(slack, token)

    listed = command("handoffs", "Q1")
    assert listed.startswith("1 open handoff(s):\n• *HO-1* [human] support-chatbot")
    assert "queued" in listed and "claim by" in listed
    assert command(f"claim {handoff}", "Q2").startswith(f"You claimed {handoff}")
    assert f"claimed by <@{BOB}>" in command("handoffs", "Q3")


def callback_row(bot: Bot) -> OutboxRow:
    """The decision's callback row (the decision is recorded just after the click's ack)."""
    found: list[OutboxRow] = []

    def recorded() -> bool:
        with Session(bot.container.engine) as s:
            found[:] = s.exec(select(OutboxRow).where(OutboxRow.kind == "handoff.callback")).all()
        return bool(found)

    wait(recorded)
    [row] = found
    return row


def test_a_callback_target_that_is_down_gets_the_decision_once_it_is_back(
    sbot: Bot, slack: SlackStandin, agent: AgentStandin
) -> None:
    handoff = send_handoff(sbot, callback_url=agent.url)
    message = card(slack, handoff)
    agent.stop()  # the agent's endpoint is down: connections refused
    click(sbot, slack, BOB, "handoff_approve", handoff, "D1", message["ts"])
    wait(lambda: callback_row(sbot).attempts >= 1 and callback_row(sbot).status == "pending")
    assert "ConnectError" in (callback_row(sbot).last_error or "")
    # the Slack side does not wait for the agent: its lane is its own
    wait(lambda: any("approved by" in t for t in thread_texts(slack, message)))
    sbot.clock.advance(seconds=5)
    sbot.container.poke()
    wait(lambda: callback_row(sbot).attempts >= 2 and callback_row(sbot).status == "pending")

    agent.start()  # back, but busy at first
    agent.fail_next(503, retry_after=120)
    sbot.clock.advance(minutes=1)
    sbot.container.poke()
    wait(lambda: len(agent.requests) == 1 and callback_row(sbot).attempts >= 3)
    wait(lambda: "HTTP 503" in (callback_row(sbot).last_error or ""))
    assert callback_row(sbot).next_attempt_at == sbot.clock.now + timedelta(seconds=120)
    sbot.clock.advance(seconds=119)
    sbot.container.poke()
    time.sleep(1.0)
    assert agent.delivered() == []  # Retry-After is honoured
    sbot.clock.advance(seconds=2)
    sbot.container.poke()
    wait(lambda: callback_row(sbot).status == "done")
    [delivery] = agent.delivered()  # exactly once
    decision = verified(delivery)
    assert decision["decision"] == "approved"
    assert {json.loads(r.body)["idempotency_key"] for r in agent.requests} == {
        f"handoff-decision:{handoff}"
    }
    sbot.clock.advance(minutes=30)
    sbot.container.poke()
    time.sleep(0.5)
    assert len(agent.delivered()) == 1
