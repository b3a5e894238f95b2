"""A workflow's change log as lines and Block Kit: `/ai-incident changes`, cards, postmortems.

Models and prompt versions come from senders: they reach Slack only through the escape given.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from bot.domain.watch.history import Change, ChangeSource

__all__ = [
    "BEFORE_INCIDENT",
    "MAX_LISTED",
    "change_line",
    "changes_blocks",
    "changes_text",
]

Escape = Callable[[str], str]

BEFORE_INCIDENT = "Changes in the 24 h before the incident"
MAX_LISTED = 40  # changes listed in one message; the rest are counted
_MAX_TEXT = 3000  # Slack's limit for a section's text
_PER_SECTION = 10
_SOURCE = {ChangeSource.RUNS: "runs", ChangeSource.OTLP: "OTLP", ChangeSource.ALERT: "alert"}


def _when(at: datetime, zone: ZoneInfo) -> str:
    return at.astimezone(zone).strftime("%Y-%m-%d %H:%M %Z")


def change_line(change: Change, esc: Escape, zone: ZoneInfo, *, workflow: bool = False) -> str:
    """Return "2026-11-23 14:02 UTC  prompt summary-v12 → summary-v13 (seen in runs)"."""
    kind = change.kind.value
    after = esc(change.after)
    what = (
        f"{kind} {after} (first seen)"
        if change.before is None
        else f"{kind} {esc(change.before)} → {after}"
    )
    where = f"{esc(change.workflow)}: " if workflow else ""
    return f"{_when(change.at, zone)}  {where}{what} (seen in {_SOURCE[change.source]})"


def changes_text(
    changes: Sequence[Change], esc: Escape, zone: ZoneInfo, *, workflow: bool = False
) -> list[str]:
    """Return one line per change, newest first, at most MAX_LISTED (and how many more)."""
    newest = sorted(changes, key=lambda c: c.at, reverse=True)
    lines = [change_line(c, esc, zone, workflow=workflow) for c in newest[:MAX_LISTED]]
    if len(newest) > MAX_LISTED:
        lines.append(f"… and {len(newest) - MAX_LISTED} older")
    return lines


def changes_blocks(
    changes: Sequence[Change], esc: Escape, zone: ZoneInfo, *, title: str, workflow: bool = False
) -> list[dict[str, Any]]:
    """Return the changes as Block Kit: a title, then sections of at most ten lines each."""
    lines = changes_text(changes, esc, zone, workflow=workflow)
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": f"*{title}*"[:_MAX_TEXT]}}
    ]
    for start in range(0, len(lines), _PER_SECTION):
        text = "\n".join(f"• {line}" for line in lines[start : start + _PER_SECTION])
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": text[:_MAX_TEXT]}})
    return blocks
