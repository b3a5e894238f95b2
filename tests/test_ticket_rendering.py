"""Pure ticket renderers: summary, labels, links, limits and the comment marker."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.domain.redaction import Redactor, SafeText
from bot.domain.views import AlertView, IncidentView
from bot.rendering.tickets import (
    DESCRIPTION_LIMIT,
    MAX_ALERTS,
    SUMMARY_LIMIT,
    comment_body,
    dedup_label,
    ticket_description,
    ticket_labels,
    ticket_summary,
    wiki_link,
)

SAFE = SafeText(Redactor())
AT = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)


def view(**changes: object) -> IncidentView:
    base: dict[str, object] = {
        "id": 7,
        "public_id": "INC-7",
        "title": "Summaries go missing",
        "workflow": "email-summarizer",
        "category": "internal",
        "severity": "P2",
        "severity_reasons": [{"rule": "refusals", "severity": "P2", "text": "refusals 0.6"}],
        "state": "triggered",
        "source": "alertmanager",
        "commander": None,
        "ai_context": {},
        "jira_key": None,
        "jira_url": None,
        "slack_channel": None,
        "slack_ts": None,
        "root_cause": None,
        "resolved_by": None,
        "milestones": {"detected": AT},
    }
    base.update(changes)
    return IncidentView(**base)  # type: ignore[arg-type]


def alert(n: int, **changes: object) -> AlertView:
    base: dict[str, object] = {
        "fingerprint": f"fp{n:04d}",
        "status": "firing",
        "title": f"alert {n}",
        "description": "x" * 2000,
        "labels": {"instance": f"worker-{n}"},
        "annotations": {},
        "links": [],
        "values": {},
        "signal": None,
        "starts_at": AT,
        "ends_at": None,
        "first_seen_at": AT,
    }
    base.update(changes)
    return AlertView(**base)  # type: ignore[arg-type]


def test_summary_is_one_redacted_line_within_jiras_limit() -> None:
    long = view(title="Key sk-proj-4fG7hK2mN9pQ1rS5tU8vW3xY6zA0bC leaked\nsecond line " + "y" * 400)
    summary = ticket_summary(long, SAFE)
    assert summary.startswith("[P2] INC-7: Key [REDACTED:openai_api_key] leaked second line ")
    assert "\n" not in summary and len(summary) == SUMMARY_LIMIT


def test_labels_have_no_spaces_and_no_repeats() -> None:
    labels = ticket_labels(
        view(workflow="weekly report", category="analytics"), SAFE, ["P2", "team a"]
    )
    assert labels == ("ai-incident", "weekly-report", "analytics", "P2", "team-a")
    assert dedup_label("INC-7") == "ai-incident-INC-7"


def test_labels_are_redacted() -> None:
    key = "sk-" + "proj-" + "4fG7hK2mN9pQ1rS5tU8vW3xY6zA0bC"
    labels = ticket_labels(view(workflow=f"leak {key} ops@example.com"), SAFE)
    assert labels[1] == "leak-[REDACTED:openai_api_key]-[REDACTED:email]"


@pytest.mark.parametrize(
    ("title", "url", "expected"),
    [
        (
            "runbook",
            "https://wiki.example.com/a b|c]",
            "[runbook|https://wiki.example.com/a%20b%7Cc%5D]",
        ),
        ("a|b]c[", "https://x.example.com/", "[a/b)c(|https://x.example.com/]"),
        ("js", "javascript:alert(1)", "js (javascript:alert(1))"),
        ("mail", "mailto:ops@example.com", "mail (mailto:\\[REDACTED:email\\])"),
        ("none", None, "none"),
        ("", "https://x.example.com/", "[link|https://x.example.com/]"),
    ],
)
def test_wiki_links(title: str, url: str | None, expected: str) -> None:
    assert wiki_link(title, url, SAFE) == expected


@given(st.text(max_size=60), st.text(max_size=60))
def test_a_link_is_one_link_whatever_its_parts(title: str, path: str) -> None:
    link = wiki_link(title, "https://example.com/" + path, SAFE)
    assert link.startswith("[") and link.endswith("]")
    inner = link[1:-1]
    # one separator, no bracket that would end the link early, no line break
    assert inner.count("|") == 1 and "[" not in inner and "]" not in inner
    assert "\n" not in link and "\r" not in link


def test_many_alerts_stay_within_the_field_limit() -> None:
    text = ticket_description(view(alerts=[alert(n) for n in range(40)]), SAFE, thread_link=None)
    assert len(text) <= DESCRIPTION_LIMIT
    assert text.count("h4. ") <= MAX_ALERTS
    assert "not posted yet; the link follows as a comment" in text


def test_the_description_shows_values_signal_commander_and_root_cause() -> None:
    text = ticket_description(
        view(
            commander="U0ALICE001",
            root_cause="prompt v12 dropped the *summary* rule",
            alerts=[
                alert(
                    1,
                    values={"B": 0.2345, "A": 3},
                    signal={"kind": "error_rate", "value": 0.23, "threshold": 0.2, "window_s": 600},
                )
            ],
        ),
        SAFE,
        thread_link="https://team.slack.com/archives/C0SUMMARY01/p1700000000000100",
    )
    lines = text.splitlines()
    assert "*Commander:* U0ALICE001" in lines
    assert "*Values:* A = 3, B = 0.2345" in lines
    assert "*Signal:* error_rate, value 0.23, threshold 0.2, window 600 s" in lines
    assert lines[-2:] == ["h3. Root cause", "prompt v12 dropped the \\*summary\\* rule"]
    assert (
        "*Slack thread:* [INC-7 in Slack|https://team.slack.com/archives/C0SUMMARY01/p1700000000000100]"
        in lines
    )


def test_a_comment_ends_with_its_marker() -> None:
    body = comment_body(SAFE.jira("State a → b"), marker_id="ticket:7:root-cause:1.0")
    assert body == "State a → b\n\n{color:#97a0af}ai-incident:ticket:7:root-cause:1.0{color}"
