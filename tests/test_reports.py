"""The postmortem draft and the timeline, pure: filled from the record, gaps marked."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bot.domain.redaction import RedactionPolicy, Redactor, SafeText
from bot.domain.views import IncidentView, JournalView
from bot.rendering.reports import GAP, postmortem_sections, render_markdown, timeline_lines

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
SAFE = SafeText(Redactor(RedactionPolicy()))


def view(**overrides: object) -> IncidentView:
    base: dict[str, object] = dict(
        id=7,
        public_id="INC-7",
        title="Summaries leak names",
        workflow="email-summarizer",
        category="internal",
        severity="P2",
        severity_reasons=[{"rule": "error_rate", "severity": "P2", "text": "error rate 7 %"}],
        state="resolved",
        source="alertmanager",
        commander="U0ALICE001",
        ai_context={
            "prompt_version": "summary-v12",
            "gen_ai.request.model": "gpt-4o",
            "gen_ai.response.model": "gpt-4o-2024-08-06",
        },
        jira_key=None,
        jira_url=None,
        slack_channel=None,
        slack_ts=None,
        root_cause="vendor swapped the default model",
        resolved_by="U0ALICE001",
        milestones={
            "detected": T0,
            "triggered": T0,
            "acknowledged": T0 + timedelta(minutes=4),
            "mitigated": None,
            "resolved": T0 + timedelta(hours=2, minutes=5),
            "root_cause_found": T0 + timedelta(hours=1),
        },
        journal=[
            JournalView(
                1,
                "action",
                "pinned gpt-4o-2024-05-13",
                "U0ALICE001",
                "slack",
                T0 + timedelta(minutes=10),
            ),
            JournalView(
                2, "result", "errors back to 1 %", "U0ALICE001", "slack", T0 + timedelta(minutes=40)
            ),
            JournalView(
                3,
                "observation",
                "mail alice@example.com",
                "U0BOB00002",
                "slack",
                T0 + timedelta(minutes=5),
                edited_at=T0 + timedelta(minutes=6),
                previous_text="typo",
            ),
            JournalView(
                4,
                "decision",
                "add a regression set",
                "U0ALICE001",
                "slack",
                T0 + timedelta(hours=2),
            ),
            JournalView(
                5,
                "observation",
                "wrong thread",
                "U0BOB00002",
                "slack",
                T0 + timedelta(minutes=7),
                deleted_at=T0 + timedelta(minutes=8),
            ),
        ],
        resolution_summary="pinned the model version",
    )
    base.update(overrides)
    return IncidentView(**base)  # type: ignore[arg-type]


def test_the_draft_is_filled_from_the_record() -> None:
    sections = {s.title: s.lines for s in postmortem_sections(view(), SAFE.plain)}
    assert list(sections) == [
        "Summary",
        "Impact",
        "Timeline",
        "What was tried",
        "Root cause",
        "Prompt version",
        "Model version",
        "External API changes",
        "Follow-ups",
    ]
    summary = "\n".join(sections["Summary"])
    assert "Acknowledged after 4 min" in summary and "Resolved after 2 h 5 min" in summary
    assert "Resolution: pinned the model version" in summary
    assert sections["Root cause"] == ["vendor swapped the default model"]
    assert sections["Prompt version"] == ["summary-v12"]
    assert sections["Model version"] == ["requested: gpt-4o", "used: gpt-4o-2024-08-06"]
    tried = "\n".join(sections["What was tried"])
    assert "pinned gpt-4o-2024-05-13" in tried and "errors back to 1 %" in tried
    assert "add a regression set" in sections["Follow-ups"][0]
    assert sections["External API changes"][0].startswith(f"[{GAP}:")


def test_gaps_are_marked_where_the_record_is_silent() -> None:
    bare = view(root_cause=None, ai_context={}, journal=[], resolution_summary=None)
    sections = {s.title: s.lines for s in postmortem_sections(bare, SAFE.plain)}
    for title in ("Root cause", "Prompt version", "Model version", "What was tried"):
        assert sections[title][0].startswith(f"[{GAP}:"), title
    assert any(GAP in line for line in sections["Summary"])


def test_the_timeline_keeps_edits_and_deletions_in_time_order_and_redacts() -> None:
    lines = timeline_lines(view(), SAFE.plain)
    assert lines[0].endswith("milestone · detected") or "milestone" in lines[0]
    edited = next(line for line in lines if "mail" in line)
    assert "edited" in edited and "before: typo" in edited
    assert "alice@example.com" not in edited  # redacted before it leaves the bot
    deleted = next(line for line in lines if "wrong thread" in line)
    assert "(deleted" in deleted
    stamps = [line[:16] for line in lines]
    assert stamps == sorted(stamps)


def test_markdown_rendering() -> None:
    text = render_markdown("Postmortem: INC-7", postmortem_sections(view(), SAFE.plain))
    assert text.startswith("# Postmortem: INC-7\n") and "\n## Root cause\n" in text
