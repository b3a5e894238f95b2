"""The review card, its modals and thread lines: valid Block Kit, within Slack's limits, inert."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from slack_sdk.models.blocks import Block
from slack_sdk.models.views import View

from bot.domain.redaction import Redactor, SafeText
from bot.handoffs.domain import Decision, HandoffStatus, HandoffView, Tier
from bot.rendering.cards import AI_CONTEXT_LABELS
from bot.rendering.handoffs import (
    edit_modal,
    handoff_card_blocks,
    handoff_card_text,
    queue_text,
    reject_modal,
    thread_text,
)

NOW = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
SAFE = SafeText(Redactor())
BOB = "U0BOB00002"


def view(**changes: Any) -> HandoffView:
    base = HandoffView(
        id=7,
        public_id="HO-7",
        idempotency_key="refund-1234",
        source="agents",
        workflow="support-chatbot",
        agent_id="support-bot",
        agent_version="2.3.1",
        reason="low_confidence",
        confidence=0.62,
        confidence_band="0.60-0.65",
        tier=Tier.HUMAN,
        tier_reason="confidence 0.62 < review threshold 0.80",
        status=HandoffStatus.QUEUED,
        request={"summary": "Refund order 1234", "text": "charged twice", "user": "c-1"},
        attempted_response="Refunded both charges.",
        error={"type": "ToolTimeout", "message": "billing did not answer"},
        suggested_actions=["check billing"],
        proposed_action={"name": "refund", "args": {"order": "1234"}},
        context={"charges": 2},
        ai_context={"gen_ai.request.model": "gpt-4o", "confidence": 0.62},
        callback_url=None,
        claimed_by=None,
        claimed_at=None,
        lease_until=None,
        decision=None,
        edited_output=None,
        reject_reason=None,
        decided_by=None,
        decided_at=None,
        received_at=NOW,
        claim_due_at=NOW + timedelta(minutes=15),
        decide_due_at=NOW + timedelta(hours=1),
        sla_claim_stage=0,
        sla_decide_stage=0,
        slack_channel=None,
        slack_ts=None,
        jira_key=None,
    )
    return replace(base, **changes)


CLAIMED = {
    "status": HandoffStatus.CLAIMED,
    "claimed_by": BOB,
    "claimed_at": NOW,
    "lease_until": NOW + timedelta(minutes=15),
}


def decided(decision: Decision, **extra: Any) -> dict[str, Any]:
    return {
        **CLAIMED,
        "status": HandoffStatus(decision.value),
        "decision": decision,
        "decided_by": BOB,
        "decided_at": NOW + timedelta(minutes=4),
        "lease_until": None,
        **extra,
    }


STATES: dict[str, dict[str, Any]] = {
    "queued": {},
    "claimed": CLAIMED,
    "approved": decided(Decision.APPROVED),
    "edited": decided(Decision.EDITED, edited_output="Refunded one charge."),
    "rejected": decided(Decision.REJECTED, reject_reason="policy says no"),
    "auto": {"tier": Tier.AUTO, "status": HandoffStatus.RECORDED},
    "bare": {
        "request": {},
        "attempted_response": None,
        "error": None,
        "suggested_actions": [],
        "proposed_action": None,
        "context": {},
        "ai_context": {},
        "confidence": None,
        "agent_id": None,
        "jira_key": "AIOPS-12",
    },
}


def valid(blocks: list[dict[str, Any]]) -> None:
    assert 0 < len(blocks) <= 50
    for block in blocks:
        parsed = Block.parse(block)
        assert parsed is not None, block
        parsed.validate_json()


@pytest.mark.parametrize("state", list(STATES))
def test_every_state_is_valid_block_kit(state: str) -> None:
    v = view(**STATES[state])
    blocks = handoff_card_blocks(v, SAFE, NOW)
    valid(blocks)
    actions = [b for b in blocks if b["type"] == "actions"]
    assert bool(actions) == v.is_open
    assert handoff_card_text(v, SAFE, NOW).startswith("HO-7 [")


def shown(v: HandoffView, now: datetime) -> str:
    return json.dumps(handoff_card_blocks(v, SAFE, now), ensure_ascii=False)


def test_the_card_says_who_holds_it_and_the_sla_clock() -> None:
    queued = shown(view(), NOW)
    assert "queued — nobody holds it" in queued and "claim by <!date^" in queued
    late = shown(view(), NOW + timedelta(minutes=20))
    assert "*missed*" in late
    held = shown(view(**CLAIMED), NOW)
    assert f"claimed by <@{BOB}> until <!date^" in held
    assert "claim by" not in held  # the claim clock has stopped
    expired = shown(view(**CLAIMED), NOW + timedelta(minutes=16))
    assert f"lease of <@{BOB}> expired" in expired
    rejected = shown(view(**STATES["rejected"]), NOW)
    assert "Rejected by" in rejected and "policy says no" in rejected


@pytest.mark.parametrize(
    ("url", "host"),
    [
        ("https://agent.example.com/decisions", "agent.example.com"),
        ("https://hook:s3cret-pass@agent.example.com:8443/d?token=x", "agent.example.com:8443"),
        ("http://[::1]:9/d", "[::1]:9"),
        ("https://<!here>@x.example/", "x.example"),
        ("https://x<!channel>y.example/", "x&lt;!channel&gt;y.example"),
    ],
)
def test_the_card_shows_the_reviewer_where_the_decision_goes(url: str, host: str) -> None:
    blocks = handoff_card_blocks(view(callback_url=url), SAFE, NOW)
    valid(blocks)
    fields = [f["text"] for b in blocks for f in b.get("fields", [])]
    assert f"*Callback to*\n{host}" in fields
    assert "s3cret" not in json.dumps(blocks) and "token=x" not in json.dumps(blocks)
    assert not any(
        f.startswith("*Callback to*")
        for b in handoff_card_blocks(view(), SAFE, NOW)
        for f in (x["text"] for x in b.get("fields", []))
    )


def test_huge_inputs_stay_within_slacks_limits() -> None:
    big = view(
        request={"summary": "s" * 2000, "text": "t" * 50_000, "user": "u" * 500},
        attempted_response="a" * 50_000,
        error={"type": "e" * 200, "message": "m" * 50_000},
        suggested_actions=["x" * 2000] * 50,
        proposed_action={"name": "n" * 200, "args": {f"k{i}": "v" * 500 for i in range(100)}},
        context={f"c{i}": "w" * 500 for i in range(100)},
        ai_context={key: "z" * 300 for key in AI_CONTEXT_LABELS},
        tier_reason="r" * 3000,
        workflow="w" * 200,
    )
    blocks = handoff_card_blocks(big, SAFE, NOW)
    valid(blocks)
    for block in blocks:
        if block["type"] == "header":
            assert len(block["text"]["text"]) <= 150
        for field in block.get("fields", []):
            assert len(field["text"]) <= 2000
        if "text" in block and block["type"] == "section":
            assert len(block["text"]["text"]) <= 3000
        if block["type"] == "context":
            assert len(block["elements"]) <= 10
    modal = edit_modal(big, SAFE, "C0REVIEWS01")
    View(**modal).validate_json()
    assert len(modal["blocks"][1]["element"]["initial_value"]) == 3000
    View(**reject_modal(big, SAFE, "C0REVIEWS01")).validate_json()


def test_the_modals_carry_the_handoff_and_the_channel() -> None:
    edit = edit_modal(view(), SAFE, "C0REVIEWS01")
    assert json.loads(edit["private_metadata"]) == {"handoff": 7, "channel": "C0REVIEWS01"}
    assert edit["blocks"][1]["element"]["initial_value"] == "Refunded both charges."
    reject = reject_modal(view(), SAFE, None)
    assert reject["blocks"][1].get("optional") is not True  # a reason is required


_ALLOWED_MARKUP = re.compile(rf"<!date\^\d+\^[^|<>]*\|[^<>]*>|<@{BOB}>")
hostile = st.text(alphabet="<>@!|&^:/.#*_~`abcUW0123 \nhttps", max_size=60)


@settings(max_examples=150, deadline=None)
@given(st.lists(hostile, min_size=8, max_size=8), st.sampled_from(list(STATES)))
def test_nothing_an_agent_sends_becomes_markup(texts: list[str], state: str) -> None:
    agent_sent: dict[str, Any] = dict(
        workflow=texts[0] or "w",
        request={"summary": texts[1], "text": texts[2], "user": texts[3], "channel": texts[4]},
        attempted_response=texts[5],
        error={"type": texts[6], "message": texts[7]},
        suggested_actions=texts[:3],
        proposed_action={"name": texts[1] or "n", "args": {texts[2]: texts[3]}},
        context={texts[4]: texts[5]},
        ai_context={"request_id": texts[6], "trace_id": texts[7]},
        agent_id=texts[0],
    )
    v = view(**{**STATES[state], **agent_sent})
    texts_shown = [handoff_card_text(v, SAFE, NOW, slack=True)]
    texts_shown += list(_strings(handoff_card_blocks(v, SAFE, NOW)))
    for text in texts_shown:
        # the bot's own markup: dates, the holder's mention, and ">" opening a quoted line
        leftover = _ALLOWED_MARKUP.sub("", text)
        leftover = re.sub(r"^>", "", leftover, flags=re.M)
        assert "<" not in leftover and ">" not in leftover, text
        # "@name" at a word start would mention; "a@b" never does
        assert not re.search(r"(?<!\w)@(?=\w)", leftover), text


def _strings(value: Any) -> Any:
    """Every string in a Block Kit structure, keys aside."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def test_thread_lines() -> None:
    until = (NOW + timedelta(minutes=15)).isoformat()
    lines = {
        "claimed": {"event": "claimed", "actor": BOB, "until": until},
        "released": {"event": "released", "actor": BOB},
        "expired": {"event": "expired", "actor": BOB},
        "rejected": {
            "event": "decided",
            "actor": BOB,
            "decision": "rejected",
            "reason": "<!channel> no",
        },
        "sla": {
            "event": "sla",
            "clock": "claim",
            "action": "oncall",
            "due": NOW.isoformat(),
            "at": (NOW + timedelta(minutes=8)).isoformat(),
            "oncall": ["U0ALICE001"],
            "paged": False,
        },
        "page": {
            "event": "sla",
            "clock": "decide",
            "action": "page",
            "due": NOW.isoformat(),
            "at": (NOW + timedelta(hours=1)).isoformat(),
            "holder": BOB,
            "oncall": [],
            "paged": False,
        },
    }
    slack = {k: thread_text("HO-7", v, SAFE, slack=True) for k, v in lines.items()}
    assert slack["claimed"].startswith(f"HO-7 claimed by <@{BOB}> until <!date^")
    assert slack["rejected"] == f"HO-7 rejected by <@{BOB}>: &lt;!channel&gt; no."
    assert slack["sla"].startswith(":alarm_clock: <@U0ALICE001>: HO-7 has not been claimed")
    assert "(8m late)" in slack["sla"]
    assert "held by" in slack["page"] and "No pager is connected yet" in slack["page"]
    plain = thread_text("HO-7", lines["claimed"], SAFE, slack=False)
    assert plain == f"HO-7 claimed by {BOB} until 2026-11-23 10:15 UTC."


def test_the_queue_text() -> None:
    assert queue_text([], 0, SAFE, NOW) == "No handoffs are waiting for review."
    text = queue_text([view(), view(id=8, public_id="HO-8", **CLAIMED)], 5, SAFE, NOW)
    assert text.startswith("5 open handoff(s):\n• *HO-7* [human] support-chatbot")
    assert text.endswith("… and 3 more.")


# Fake credentials are assembled from pieces so that secret scanners do not flag this file.
KEY = "sk-" + "proj-" + "Ab3dEfGhXq3vN8kLm2Pw7RtY9aBc4DeF6gHj1KsT0u"


@pytest.mark.parametrize("pad", [0, 40, 60, 70, 150, 290, 300, 490, 1490, 1500, 1990, 2390])
def test_a_secret_at_the_clip_edge_is_redacted_not_cut(pad: int) -> None:
    text = "x" * pad + " " + KEY + " tail"
    hostile = view(
        request={"summary": text, "text": text, "user": text, "channel": "web"},
        attempted_response=text,
        error={"type": "E", "message": text},
        suggested_actions=[text],
        **decided(Decision.REJECTED, reject_reason=text),
    )
    queued = replace(hostile, status=HandoffStatus.QUEUED, decision=None)
    outputs = [
        json.dumps(handoff_card_blocks(hostile, SAFE, NOW)),
        handoff_card_text(hostile, SAFE, NOW, slack=True),
        handoff_card_text(hostile, SAFE, NOW, slack=False),
        queue_text([queued], 1, SAFE, NOW),
        json.dumps(edit_modal(hostile, SAFE, "C1")),
    ]
    for out in outputs:
        assert "Ab3d" not in out
        assert "sk-proj" not in out
