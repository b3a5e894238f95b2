"""Pure renderers for Jira tickets: summary, labels, and the full-context description (wiki markup).

Every piece of text that came from outside (alert titles, labels, annotations, AI context, journal
lines, people's words) goes through `SafeText.jira` (redacted, then escaped), or `SafeText.plain`
where Jira shows text without markup (the summary, labels). Links are built here from redacted
URLs, percent-encoding the characters that would end Jira's `[title|url]` early.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any
from urllib.parse import quote

from bot.domain.redaction import SafeText
from bot.domain.views import AlertView, IncidentView
from bot.rendering.cards import AI_CONTEXT_LABELS

__all__ = [
    "COMMENT_MARKER",
    "DESCRIPTION_LIMIT",
    "MAX_ALERTS",
    "SUMMARY_LIMIT",
    "comment_body",
    "dedup_label",
    "ticket_description",
    "ticket_labels",
    "ticket_summary",
    "wiki_link",
]

SUMMARY_LIMIT = 255  # Jira rejects longer summaries
DESCRIPTION_LIMIT = 32_000  # Jira's text fields hold 32,767 characters
MAX_ALERTS = 25
COMMENT_MARKER = "ai-incident:{}"
_LABEL_UNSAFE = re.compile(r"\s+")
# characters that end or confuse a wiki link's URL part
_URL_UNSAFE = "|[]{}<>\"' \t\r\n^`\\"
# only web links become links; a redaction mark may sit where the password was
_WEB_URL = re.compile(r"^https?://[^\s/?#]+", re.IGNORECASE)


def dedup_label(public_id: str) -> str:
    """Return the label only this incident's ticket carries (how a retry finds it)."""
    return f"ai-incident-{public_id}"


def _label(text: str) -> str:
    return _LABEL_UNSAFE.sub("-", text.strip())[:255]


def ticket_labels(view: IncidentView, safe: SafeText, extra: Iterable[str] = ()) -> tuple[str, ...]:
    """Return the labels: workflow, category, severity, `ai-incident`, then any configured ones."""
    out: list[str] = []
    for raw in ("ai-incident", safe.plain(view.workflow), view.category, view.severity, *extra):
        label = _label(raw)
        if label and label not in out:
            out.append(label)
    return tuple(out)


def ticket_summary(view: IncidentView, safe: SafeText) -> str:
    """Return `[P1] INC-7: title` on one line, redacted, within Jira's limit."""
    title = " ".join(safe.plain(view.title).split())
    return f"[{view.severity}] {view.public_id}: {title}"[:SUMMARY_LIMIT]


def wiki_link(title: str, url: str | None, safe: SafeText) -> str:
    """Return `[title|url]` for an http(s) URL (redacted), else the escaped text of both."""
    shown = safe.jira(" ".join(title.split())) or "link"
    if not url:
        return shown
    redacted = safe.plain(url).strip()
    if not _WEB_URL.match(redacted):
        return f"{shown} ({safe.jira(redacted)})"
    target = "".join(quote(ch, safe="") if ch in _URL_UNSAFE else ch for ch in redacted)
    # a link text holding `|` or `]` would end the link early, whatever the escaping
    text = shown.replace("\\|", "/").replace("\\]", ")").replace("\\[", "(")
    return f"[{text}|{target}]"


def _cell(value: Any, safe: SafeText) -> str:
    # a cell is one line; an empty cell would merge with its neighbour
    text = " ".join(str(value).split()) if value is not None else ""
    return safe.jira(text) or " "


def _table(head: tuple[str, str], rows: Iterable[tuple[Any, Any]], safe: SafeText) -> list[str]:
    body = [f"|{_cell(k, safe)}|{_cell(v, safe)}|" for k, v in rows]
    if not body:
        return []
    return [f"||{head[0]}||{head[1]}||", *body]


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S UTC") if value else "—"


def _number(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _signal(signal: Mapping[str, Any] | None) -> str | None:
    if not signal:
        return None
    parts = [str(signal.get("kind"))]
    for name in ("value", "threshold", "baseline", "stddev"):
        if signal.get(name) is not None:
            parts.append(f"{name} {_number(signal[name])}")
    if signal.get("window_s") is not None:
        parts.append(f"window {_number(signal['window_s'])} s")
    return ", ".join(parts)


def _alert(alert: AlertView, safe: SafeText) -> list[str]:
    lines = [
        f"h4. {safe.jira(' '.join(alert.title.split()))} ({alert.status})",
        f"*Fingerprint:* {safe.jira(alert.fingerprint)}",
        f"*Started:* {_when(alert.starts_at)}   *Ended:* {_when(alert.ends_at)}",
    ]
    if alert.description:
        lines.append(safe.jira(alert.description))
    if sig := _signal(alert.signal):
        lines.append(f"*Signal:* {safe.jira(sig)}")
    if alert.values:
        values = ", ".join(f"{k} = {_number(v)}" for k, v in sorted(alert.values.items()))
        lines.append(f"*Values:* {safe.jira(values)}")
    lines += _table(("Label", "Value"), sorted(alert.labels.items()), safe)
    lines += _table(("Annotation", "Value"), sorted(alert.annotations.items()), safe)
    if alert.links:
        lines.append("*Links:*")
        lines += [
            f"* {wiki_link(str(link.get('title') or 'link'), link.get('url'), safe)}"
            for link in alert.links
        ]
    return lines


def ticket_description(view: IncidentView, safe: SafeText, *, thread_link: str | None) -> str:
    """Return the ticket description: everything a reviewer needs without opening anything else."""
    commander = safe.jira(view.commander) if view.commander else "none yet"
    lines = [
        f"h2. {view.public_id}: {safe.jira(' '.join(view.title.split()))}",
        "",
        f"*Severity:* {view.severity}",
        f"*State:* {view.state}",
        f"*Workflow:* {safe.jira(view.workflow)} ({view.category})",
        f"*Source:* {safe.jira(view.source)}",
        f"*Commander:* {commander}",
        f"*Detected:* {_when(view.milestones.get('detected'))}",
        "*Slack thread:* "
        + (
            wiki_link(f"{view.public_id} in Slack", thread_link, safe)
            if thread_link
            else "not posted yet; the link follows as a comment"
        ),
        "",
        f"h3. Why {view.severity}",
        *[
            f"* {safe.jira(r.get('text'))} (rule {safe.jira(r.get('rule'))})"
            for r in view.severity_reasons
        ],
        "",
        "h3. AI context",
    ]
    pairs = [
        (label, view.ai_context[key])
        for key, label in AI_CONTEXT_LABELS.items()
        if view.ai_context.get(key) not in (None, "")
    ]
    lines += _table(("Field", "Value"), pairs, safe) or ["None carried by the alerts."]
    firing = sum(1 for a in view.alerts if a.status == "firing")
    lines += ["", f"h3. Alerts ({len(view.alerts)}, {firing} firing)"]
    for alert in view.alerts[:MAX_ALERTS]:
        lines += _alert(alert, safe)
    if len(view.alerts) > MAX_ALERTS:
        lines.append(f"… and {len(view.alerts) - MAX_ALERTS} more; see the Slack thread.")
    if view.root_cause:
        lines += ["", "h3. Root cause", safe.jira(view.root_cause)]
    return _within(lines, DESCRIPTION_LIMIT)


def _within(lines: list[str], limit: int) -> str:
    """Join lines, cutting at a line boundary so no escape or link is split."""
    out: list[str] = []
    size = 0
    for line in lines:
        if size + len(line) + 1 > limit - 80:
            out.append("… (cut to fit Jira's field limit; see the Slack thread)")
            break
        out.append(line)
        size += len(line) + 1
    return "\n".join(out)


def comment_body(markup: str, *, marker_id: str) -> str:
    """Return a comment: markup already made safe, then a quiet marker a retry looks for."""
    marker = COMMENT_MARKER.format(marker_id)
    return f"{markup}\n\n{{color:#97a0af}}{marker}{{color}}"
