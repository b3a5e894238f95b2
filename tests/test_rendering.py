"""The incident card, its notification text, journal lines and the exports: nothing untrusted
reaches them except redacted, clipped and escaped by `SafeText` (§7)."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

from slack_sdk.models.blocks import Block

from bot.domain.redaction import WORD_JOINER, Redactor, SafeText
from bot.domain.views import AlertView, IncidentView, JournalView, PageView
from bot.rendering.cards import card_blocks, card_text, export_json, export_markdown, journal_text

NOW = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
SAFE = SafeText(Redactor())
# Fake credentials are assembled from pieces so that secret scanners do not flag this file.
OPENAI = "sk-" + "proj-" + "Ab3dEfGhXq3vN8kLm2Pw7RtY9aBc4DeF6gHj1KsT0u"
SLACK_BOT = "xox" + "b-" + "123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx"
LIVE = "<!channel> @here <@U123> <https://evil.example|click me>"


def incident(**changes: Any) -> IncidentView:
    base: dict[str, Any] = {
        "id": 7,
        "public_id": "INC-7",
        "title": "Summarizer error rate",
        "workflow": "email-summarizer",
        "category": "internal",
        "severity": "P1",
        "severity_reasons": [{"severity": "P1", "rule": "r1", "text": "error rate 0.3"}],
        "state": "triggered",
        "source": "alertmanager",
        "commander": None,
        "ai_context": {"gen_ai.request.model": "gpt-4o"},
        "jira_key": None,
        "jira_url": None,
        "slack_channel": None,
        "slack_ts": None,
        "root_cause": None,
        "resolved_by": None,
        "milestones": {"triggered": NOW},
    }
    base.update(changes)
    return IncidentView(**base)


def strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in strings(v)]
    if isinstance(value, list | tuple):
        return [s for v in value for s in strings(v)]
    return []


def test_the_card_header_is_redacted() -> None:
    blocks = card_blocks(incident(title=f"leaked {OPENAI} and {SLACK_BOT}"), SAFE)
    header = blocks[0]["text"]["text"]
    assert header.startswith("INC-7 leaked [REDACTED:openai_api_key] and [REDACTED:slack_token]")
    for text in strings(blocks):
        assert "Ab3dEfGh" not in text and "AbCdEfGhIj" not in text
    assert Block.parse(blocks[0]) is not None


def test_a_long_header_is_clipped_after_redaction() -> None:
    blocks = card_blocks(incident(title="x" * 130 + " " + OPENAI), SAFE)
    header = blocks[0]["text"]["text"]
    assert len(header) <= 150
    assert "sk-proj" not in header and "Ab3d" not in header


def test_the_card_header_shows_no_markup() -> None:
    header = card_blocks(incident(title=LIVE), SAFE)[0]["text"]["text"]
    assert "<" not in header and ">" not in header
    assert f"@{WORD_JOINER}here" in header


def test_the_notification_text_of_a_slack_card_is_escaped() -> None:
    text = card_text(
        incident(title=LIVE, workflow="<!here>", ai_context={"request_id": "<@U999>"}),
        SAFE,
        slack=True,
    )
    assert "<" not in text and ">" not in text
    assert "&lt;!channel&gt;" in text and f"@{WORD_JOINER}here" in text
    assert "&lt;https://evil.example|click me&gt;" in text


def test_the_console_card_is_redacted_plain_text() -> None:
    text = card_text(incident(title=f"{LIVE} {OPENAI}"), SAFE)
    assert LIVE in text and "[REDACTED:openai_api_key]" in text


def test_a_journal_author_is_redacted_in_the_console_too() -> None:
    entry = JournalView(1, "observation", "seen", f"bot {OPENAI}", "slack", NOW)
    assert OPENAI not in journal_text(entry, SAFE, slack=False)
    assert OPENAI not in journal_text(entry, SAFE, slack=True)


def hostile_incident() -> IncidentView:
    secret = f"{LIVE} {OPENAI}"
    return incident(
        title=secret,
        workflow="email-summarizer",
        severity_reasons=[{"severity": "P1", "rule": "r1", "text": secret}],
        commander="U0ALICE001",
        ai_context={"request_id": secret, "gen_ai.request.model": "gpt-4o"},
        root_cause=secret,
        alerts=[
            AlertView(
                fingerprint="0123456789abcdef",
                status="firing",
                title=secret,
                description=secret,
                labels={"team": secret, "api_key": "hunter2hunter2"},
                annotations={"summary": secret},
                links=[{"title": secret, "url": f"https://u:{OPENAI}@evil.example"}],
                values={"A": 1.0},
                signal={"kind": "error_rate", "value": 0.3},
                starts_at=NOW,
                ends_at=None,
                first_seen_at=NOW,
            )
        ],
        journal=[
            JournalView(1, "observation", secret, secret, "slack", NOW, NOW, secret, None),
        ],
        pages=[PageView("bob", "pagerduty", "escalation", "failed", secret, NOW, None)],
    )


def test_the_json_export_is_redacted() -> None:
    out = json.dumps(export_json(hostile_incident(), SAFE))
    assert "Ab3dEfGh" not in out and "hunter2" not in out
    assert "[REDACTED:openai_api_key]" in out
    # JSON is data: markup stays as written, nobody reads it as Slack text
    assert "<!channel>" in out


def test_the_markdown_export_is_redacted_and_escaped() -> None:
    out = export_markdown(hostile_incident(), SAFE)
    assert "Ab3dEfGh" not in out and "hunter2" not in out
    # every bracket, pipe and "!" of the sender's is backslash-escaped
    assert not re.search(r"(?<!\\)[<>\[\]|!]", out.split("## Alerts")[0].replace("[REDACTED", ""))
    assert "\\<\\!channel\\>" in out
    assert f"@{WORD_JOINER}here" in out


def test_the_raw_exports_show_the_stored_text() -> None:
    view = hostile_incident()
    assert OPENAI in json.dumps(export_json(view, None))
    raw = export_markdown(view, None)
    assert OPENAI in raw and "<!channel>" in raw
