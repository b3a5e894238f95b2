"""Card buttons, the severity select and thread capture, signed the way Slack sends them."""

from __future__ import annotations

import json
import time
from typing import Any
from urllib.parse import urlencode

from slack_sdk.models.blocks import Block
from sqlmodel import Session, select

from storage.models import IncidentRow, JournalRow
from tests.conftest import Bot, payload
from tests.standins.slack import SlackStandin
from tests.support.slack_requests import ALICE, CAROL, signed


def posted_incident(bot: Bot) -> IncidentRow:
    assert (
        bot.post("/webhooks/alertmanager", payload("alertmanager_v4_firing.json")).status_code
        == 202
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with Session(bot.container.engine) as s:
            inc = s.exec(select(IncidentRow)).one()
        if inc.slack_ts is not None:
            return inc
        time.sleep(0.05)
    raise AssertionError("the card was not posted")


def current(bot: Bot, incident_id: int | None) -> IncidentRow:
    with Session(bot.container.engine) as s:
        row = s.get(IncidentRow, incident_id)
        assert row is not None
        return row


def interaction(slack: SlackStandin, user: str, action: dict[str, Any], token: str) -> str:
    body = {
        "type": "block_actions",
        "team": {"id": "T0001", "domain": "example"},
        "user": {"id": user, "username": "someone", "team_id": "T0001"},
        "api_app_id": "A0001",
        "token": "legacy",
        "trigger_id": "13345224609.738474920.8088930838d88f008e0",
        "channel": {"id": "C0SUMMARY01", "name": "ai-summarizer"},
        "container": {"type": "message", "message_ts": "1700000000.000100"},
        "response_url": slack.response_url(token),
        "actions": [{**action, "action_ts": "1700000001.000200"}],
    }
    return urlencode({"payload": json.dumps(body)})


def event(inner: dict[str, Any], event_id: str) -> str:
    return json.dumps(
        {
            "token": "legacy",
            "team_id": "T0001",
            "api_app_id": "A0001",
            "event": inner,
            "type": "event_callback",
            "event_id": event_id,
            "event_time": int(time.time()),
        }
    )


def post(bot: Bot, body: str, json_body: bool = False) -> None:
    headers = signed(body)
    if json_body:
        headers["Content-Type"] = "application/json"
    r = bot.client.post("/slack/events", content=body, headers=headers)
    assert r.status_code == 200, r.text


def wait(check: Any) -> None:
    # Slack posts are paced at one per second per channel, pages and tickets add thread posts
    deadline = time.monotonic() + 40
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise AssertionError("condition not reached")


def test_the_card_has_valid_blocks_with_buttons(sbot: Bot, slack: SlackStandin) -> None:
    posted_incident(sbot)
    # top-level messages outside direct messages (the P1 also pages people by DM)
    [card] = [
        m
        for m in slack.messages()
        if m.get("thread_ts") in (None, m["ts"]) and not m["channel"].startswith("D")
    ]
    for block in card["blocks"]:
        parsed = Block.parse(block)
        assert parsed is not None
        parsed.validate_json()
    actions = next(b for b in card["blocks"] if b["type"] == "actions")
    ids = [e["action_id"] for e in actions["elements"]]
    # P1: nothing to escalate to; the runbook's first response, pausing, is offered
    assert ids == ["incident_ack", "incident_resolve", "incident_pause", "incident_severity"]


def test_acknowledge_button_and_severity_select(sbot: Bot, slack: SlackStandin) -> None:
    inc = posted_incident(sbot)
    ack = {
        "action_id": "incident_ack",
        "block_id": f"incident_actions:{inc.id}",
        "value": str(inc.id),
        "type": "button",
    }
    post(sbot, interaction(slack, ALICE, ack, "B1"))  # answered before the work is done
    wait(lambda: current(sbot, inc.id).state == "acknowledged")
    assert current(sbot, inc.id).commander == ALICE
    lower = {
        "action_id": "incident_severity",
        "block_id": f"incident_actions:{inc.id}",
        "type": "static_select",
        "selected_option": {"text": {"type": "plain_text", "text": "P3"}, "value": "P3"},
    }
    post(sbot, interaction(slack, CAROL, lower, "B2"))
    wait(lambda: slack.responses("B2"))
    refusal = slack.responses("B2")[0]
    assert refusal["text"].startswith("Only responders") and refusal["response_type"] == "ephemeral"
    post(sbot, interaction(slack, ALICE, lower, "B3"))
    wait(lambda: current(sbot, inc.id).severity == "P3")
    # the card is refreshed in place by the delivery worker (after its debounce), never re-posted
    sbot.clock.advance(seconds=5)
    sbot.container.worker.poke()
    wait(lambda: any("P3" in str(c.params.get("text")) for c in slack.calls("chat.update")))
    cards = [
        m
        for m in slack.messages()
        if m.get("thread_ts") in (None, m["ts"]) and not m["channel"].startswith("D")
    ]
    assert len(cards) == 1


def test_thread_replies_edits_and_deletes_reach_the_journal(sbot: Bot, slack: SlackStandin) -> None:
    inc = posted_incident(sbot)
    channel, thread = inc.slack_channel, inc.slack_ts
    reply = {
        "type": "message",
        "channel": channel,
        "user": ALICE,
        "text": "restarted worker-1, errors dropping",
        "ts": "1800000000.000100",
        "thread_ts": thread,
        "channel_type": "channel",
    }
    body = event(reply, "Ev01")
    post(sbot, body, json_body=True)
    post(sbot, body, json_body=True)  # Slack retries: captured once
    own = {**reply, "bot_id": "B0BOT", "ts": "1800000000.000200", "text": "bot echo"}
    post(sbot, event(own, "Ev02"), json_body=True)

    def entries() -> list[JournalRow]:
        with Session(sbot.container.engine) as s:
            return list(s.exec(select(JournalRow).where(JournalRow.via == "slack")).all())

    wait(lambda: len(entries()) == 1)
    [entry] = entries()
    assert entry.author == ALICE and entry.text == reply["text"]
    changed = {
        "type": "message",
        "subtype": "message_changed",
        "channel": channel,
        "ts": "1800000001.000000",
        "message": {**reply, "text": "restarted worker-1 and worker-2"},
        "previous_message": reply,
    }
    post(sbot, event(changed, "Ev03"), json_body=True)
    wait(lambda: entries()[0].edited_at is not None)
    assert entries()[0].previous_text == reply["text"]
    assert entries()[0].text == "restarted worker-1 and worker-2"
    deleted = {
        "type": "message",
        "subtype": "message_deleted",
        "channel": channel,
        "ts": "1800000002.000000",
        "deleted_ts": reply["ts"],
        "previous_message": reply,
    }
    post(sbot, event(deleted, "Ev04"), json_body=True)
    wait(lambda: entries()[0].deleted_at is not None)
    assert len(entries()) == 1  # marked, not erased


def paused(bot: Bot, workflow: str) -> bool:
    # a fresh session each look: one kept open would keep reading its first snapshot
    with Session(bot.container.engine) as s:
        return bot.container.killswitch.is_paused(s, workflow)


def test_pause_button_pauses_the_workflow_and_the_card_offers_resume(
    sbot: Bot, slack: SlackStandin
) -> None:
    inc = posted_incident(sbot)
    pause = {"action_id": "incident_pause", "value": str(inc.id), "type": "button"}
    post(sbot, interaction(slack, CAROL, pause, "P0"))  # not a responder
    wait(lambda: slack.responses("P0"))
    assert slack.responses("P0")[0]["text"].startswith("Only responders can pause a workflow")
    post(sbot, interaction(slack, ALICE, pause, "P1"))
    wait(lambda: paused(sbot, inc.workflow))

    # the flip is journalled in the thread, and the refreshed card offers Resume instead;
    # debounced card updates (the ticket's key, for one) come due as the clock moves on
    def flip_in_thread() -> bool:
        sbot.clock.advance(seconds=3)
        sbot.container.poke()
        return any(
            "Kill switch" in m.get("text", "")
            for m in slack.thread(inc.slack_channel or "", inc.slack_ts or "")
        )

    wait(flip_in_thread)

    def card_offers_resume() -> bool:
        sbot.clock.advance(seconds=3)
        sbot.container.poke()
        updates = [c.params for c in slack.calls("chat.update")]
        return any("incident_resume" in json.dumps(u.get("blocks")) for u in updates)

    wait(card_offers_resume)
    assert slack.responses("P1") == []  # a flip that happened needs no extra answer
    resume = {"action_id": "incident_resume", "value": str(inc.id), "type": "button"}
    post(sbot, interaction(slack, ALICE, resume, "P2"))
    wait(lambda: not paused(sbot, inc.workflow))


def test_garbage_is_refused_without_a_trace(sbot: Bot, slack: SlackStandin) -> None:
    for body, kind in (
        ("payload=%7Bnot-json", "application/x-www-form-urlencoded"),
        ("{not json", "application/json"),
        ("payload=" + "x" * 10, "application/x-www-form-urlencoded"),
        ('{"type": "event_callback", "event": "nope"}', "application/json"),
    ):
        headers = signed(body)
        headers["Content-Type"] = kind
        r = sbot.client.post("/slack/events", content=body, headers=headers)
        assert r.status_code in (200, 400, 404), (body, r.status_code)
        assert "Traceback" not in r.text


def test_url_verification(sbot: Bot) -> None:
    body = json.dumps(
        {
            "token": "legacy",
            "challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P",
            "type": "url_verification",
        }
    )
    headers = signed(body)
    headers["Content-Type"] = "application/json"
    r = sbot.client.post("/slack/events", content=body, headers=headers)
    assert r.status_code == 200 and "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P" in r.text
