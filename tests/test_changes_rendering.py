"""The change log rendered: the command's list, the card's and the postmortem's 24 h section."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from bot.domain.redaction import RedactionPolicy, Redactor, SafeText
from bot.domain.watch.history import Change, ChangeSource, VersionKind
from bot.rendering.cards import card_blocks, card_text
from bot.rendering.changes import BEFORE_INCIDENT, MAX_LISTED, changes_blocks, changes_text
from bot.rendering.reports import postmortem_sections
from tests.test_reports import view

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
UTC_ZONE = ZoneInfo("UTC")
SAFE = SafeText(Redactor(RedactionPolicy()))
PROMPT = Change(
    "email-summarizer",
    VersionKind.PROMPT,
    "summary-v12",
    "summary-v13",
    T0 - timedelta(minutes=40),
    ChangeSource.RUNS,
)
MODEL = Change(
    "email-summarizer", VersionKind.MODEL, None, "<!channel>", T0 - timedelta(hours=3),
    ChangeSource.OTLP,
)  # fmt: skip


def test_changes_are_listed_newest_first_and_escaped() -> None:
    lines = changes_text([MODEL, PROMPT], SAFE.slack, UTC_ZONE, workflow=True)
    assert lines[0] == (
        "2026-11-23 08:20 UTC  email-summarizer: prompt summary-v12 → summary-v13 (seen in runs)"
    )
    assert lines[1].startswith("2026-11-23 06:00 UTC  email-summarizer: model ")
    assert "<!channel>" not in lines[1] and lines[1].endswith("(first seen) (seen in OTLP)")


def test_a_long_log_is_cut_with_a_count_and_blocks_stay_in_slacks_limits() -> None:
    many = [
        Change("w", VersionKind.MODEL, f"m{i}", f"m{i + 1}", T0 + timedelta(minutes=i), ChangeSource.RUNS)
        for i in range(MAX_LISTED + 5)
    ]  # fmt: skip
    lines = changes_text(many, SAFE.slack, UTC_ZONE)
    assert len(lines) == MAX_LISTED + 1 and lines[-1] == "… and 5 older"
    assert "m44 → m45" in lines[0]
    blocks = changes_blocks(many, SAFE.slack, UTC_ZONE, title="Changes")
    assert blocks[0]["text"]["text"] == "*Changes*"
    assert len(blocks) == 1 + 5 and all(len(b["text"]["text"]) <= 3000 for b in blocks)


def test_the_card_lists_the_changes_before_the_incident_and_nothing_when_none() -> None:
    with_changes = view(state="triggered", changes=[MODEL, PROMPT])
    blocks = card_blocks(with_changes, SAFE)
    texts = [b["text"]["text"] for b in blocks if b["type"] == "section" and "text" in b]
    title = texts.index(f"*{BEFORE_INCIDENT}*")
    assert "prompt summary-v12 → summary-v13" in texts[title + 1]
    assert blocks[-1]["type"] == "actions"  # the buttons stay last
    assert "changes in the 24 h before the incident:" in card_text(with_changes, SAFE)
    plain = card_blocks(view(state="triggered"), SAFE)
    assert not any(BEFORE_INCIDENT in str(b) for b in plain)
    assert BEFORE_INCIDENT.lower() not in card_text(view(state="triggered"), SAFE)


def test_the_postmortem_has_a_changes_section_only_when_there_were_changes() -> None:
    sections = postmortem_sections(view(changes=[PROMPT]), SAFE.slack)
    titles = [s.title for s in sections]
    assert titles.index(BEFORE_INCIDENT) == titles.index("Model version") + 1
    [section] = [s for s in sections if s.title == BEFORE_INCIDENT]
    assert section.lines == [
        "2026-11-23 08:20 UTC  prompt summary-v12 → summary-v13 (seen in runs)"
    ]
    assert BEFORE_INCIDENT not in [s.title for s in postmortem_sections(view(), SAFE.slack)]
