"""Pure renderers: incident card (Block Kit and text), journal lines, exports.

Everything an alert, a sender or a person wrote is untrusted: it reaches a card, a line or an
export only through `SafeText` (redacted, clipped, then escaped for where it goes). Only what the
bot builds itself — Slack ids it mentions, links to its own tickets, dates — is left as markup.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from bot.domain.redaction import SafeText
from bot.domain.views import IncidentView, JournalView
from bot.domain.watch.figures import WatchFigures
from bot.rendering.changes import BEFORE_INCIDENT, changes_blocks, changes_text
from bot.rendering.watch_blocks import last_hour_line

__all__ = [
    "AI_CONTEXT_LABELS",
    "DECLARE_VIEW_ID",
    "card_blocks",
    "card_text",
    "declare_modal",
    "export_json",
    "export_markdown",
    "journal_text",
]

SEVERITY_MARK = {"P1": ":red_circle:", "P2": ":large_orange_circle:", "P3": ":large_yellow_circle:"}

AI_CONTEXT_LABELS = {
    "request_id": "request",
    "trace_id": "trace",
    "agent.id": "agent",
    "agent.version": "agent version",
    "prompt_version": "prompt",
    "gen_ai.provider.name": "provider",
    "gen_ai.request.model": "model requested",
    "gen_ai.response.model": "model used",
    "gen_ai.usage.input_tokens": "input tokens",
    "gen_ai.usage.output_tokens": "output tokens",
    "cost_usd": "cost (USD)",
    "latency_ms": "latency (ms)",
    "confidence": "confidence",
}


def _ai_context_pairs(view: IncidentView) -> list[tuple[str, str]]:
    return [
        (label, str(view.ai_context[key]))
        for key, label in AI_CONTEXT_LABELS.items()
        if view.ai_context.get(key) not in (None, "")
    ]


HEADER_MAX = 150  # Slack's limit for a header block's text
_SLACK_USER = re.compile(r"^[UW][A-Z0-9]{2,}$")


def _mention(user: str | None, safe: SafeText) -> str:
    """Mention a Slack user id; anything that is not one is shown as inert text."""
    if not user:
        return "none yet"
    return f"<@{user}>" if _SLACK_USER.match(user) else safe.slack(user)


def _ts(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S UTC") if value else "—"


def _ticket(view: IncidentView, tickets: bool) -> str:
    if view.jira_key:
        return view.jira_key
    return "ticket pending" if tickets else "no tickets (Jira is off)"


_UTC = ZoneInfo("UTC")


def card_text(
    view: IncidentView,
    safe: SafeText,
    *,
    tickets: bool = True,
    slack: bool = False,
    last_hour: WatchFigures | None = None,
) -> str:
    """Return the card as readable text: Slack's notification text (`slack`) or the console.

    Slack reads mentions and links in a message's top-level text too, so there it is escaped
    like the blocks. `last_hour` is the workflow's watched figures, when it has history.
    """
    out = safe.slack if slack else safe.plain
    lines = [
        f"{view.public_id} [{view.severity}] {out(view.title)}",
        f"  state: {view.state}   workflow: {out(view.workflow)} ({view.category})"
        + ("  [PAUSED by kill switch]" if view.workflow_paused else ""),
        f"  commander: {out(view.commander) or 'none yet'}   ticket: {out(_ticket(view, tickets))}",
    ]
    for reason in view.severity_reasons:
        lines.append(f"  why {reason['severity']}: {out(reason['text'])}")
    pairs = _ai_context_pairs(view)
    if pairs:
        lines.append("  AI context: " + ", ".join(f"{k} {out(v)}" for k, v in pairs))
    if last_hour is not None:
        lines.append("  " + last_hour_line(last_hour, out, _UTC))
    if view.changes:
        lines.append(f"  {BEFORE_INCIDENT.lower()}:")
        lines.extend(f"    {line}" for line in changes_text(view.changes, out, _UTC))
    lines.append(f"  alerts: {view.alerts_firing} firing of {view.alerts_total}")
    return "\n".join(lines)


ACK_ACTION_ID = "incident_ack"
RESOLVE_ACTION_ID = "incident_resolve"
ESCALATE_ACTION_ID = "incident_escalate"
PAUSE_ACTION_ID = "incident_pause"
RESUME_ACTION_ID = "incident_resume"
SEVERITY_ACTION_ID = "incident_severity"
CARD_ACTIONS_BLOCK = "incident_actions"


def _card_actions(view: IncidentView) -> dict[str, Any]:
    value = str(view.id)
    elements: list[dict[str, Any]] = []
    if view.state == "triggered":
        elements.append(
            {
                "type": "button",
                "action_id": ACK_ACTION_ID,
                "text": {"type": "plain_text", "text": "Acknowledge"},
                "style": "primary",
                "value": value,
            }
        )
    elements.append(
        {
            "type": "button",
            "action_id": RESOLVE_ACTION_ID,
            "text": {"type": "plain_text", "text": "Resolve"},
            "value": value,
            "confirm": {
                "title": {"type": "plain_text", "text": "Resolve this incident?"},
                "text": {"type": "plain_text", "text": f"{view.public_id} will be resolved."},
                "confirm": {"type": "plain_text", "text": "Resolve"},
                "deny": {"type": "plain_text", "text": "Cancel"},
            },
        }
    )
    if view.severity != "P1":
        elements.append(
            {
                "type": "button",
                "action_id": ESCALATE_ACTION_ID,
                "text": {"type": "plain_text", "text": "Escalate"},
                "style": "danger",
                "value": value,
            }
        )
    if view.workflow_paused:
        elements.append(
            {
                "type": "button",
                "action_id": RESUME_ACTION_ID,
                "text": {"type": "plain_text", "text": "Resume workflow"},
                "value": value,
                "confirm": {
                    "title": {"type": "plain_text", "text": "Resume the workflow?"},
                    "text": {
                        "type": "plain_text",
                        "text": "Agents of this workflow will run on their own again.",
                    },
                    "confirm": {"type": "plain_text", "text": "Resume"},
                    "deny": {"type": "plain_text", "text": "Cancel"},
                },
            }
        )
    elif view.severity in ("P1", "P2"):
        # the runbook's first response to P1/P2: switch the workflow to humans
        elements.append(
            {
                "type": "button",
                "action_id": PAUSE_ACTION_ID,
                "text": {"type": "plain_text", "text": "Pause workflow"},
                "value": value,
            }
        )
    options = [
        {"text": {"type": "plain_text", "text": sev}, "value": sev} for sev in ("P1", "P2", "P3")
    ]
    elements.append(
        {
            "type": "static_select",
            "action_id": SEVERITY_ACTION_ID,
            "placeholder": {"type": "plain_text", "text": "Severity"},
            "options": options,
            "initial_option": next(o for o in options if o["value"] == view.severity),
        }
    )
    return {"type": "actions", "block_id": f"{CARD_ACTIONS_BLOCK}:{view.id}", "elements": elements}


def _ticket_mrkdwn(view: IncidentView, safe: SafeText, tickets: bool) -> str:
    if view.jira_key and view.jira_url and view.jira_url.startswith(("https://", "http://")):
        url = view.jira_url.replace("|", "%7C").replace(">", "%3E")
        return f"<{url}|{safe.slack(view.jira_key)}>"
    return safe.slack(_ticket(view, tickets))


def card_blocks(
    view: IncidentView,
    safe: SafeText,
    *,
    tickets: bool = True,
    last_hour: WatchFigures | None = None,
) -> list[dict[str, Any]]:
    """Return the incident card as Block Kit blocks.

    `last_hour` (the workflow's watched figures, when it has history) adds a context line
    beside the AI context.
    """
    mark = SEVERITY_MARK.get(view.severity, "")
    reasons = "\n".join(f"• {safe.slack(r['text'])}" for r in view.severity_reasons) or "• —"
    title = safe.slack_plain(view.title, limit=HEADER_MAX - len(view.public_id) - 1)
    blocks: list[dict[str, Any]] = [
        {
            "type": "header",
            "text": {"type": "plain_text", "text": f"{view.public_id} {title}"[:HEADER_MAX]},
        },
        {
            "type": "section",
            "fields": [
                {"type": "mrkdwn", "text": f"*Severity*\n{mark} {view.severity}"},
                {"type": "mrkdwn", "text": f"*State*\n{view.state}"},
                {
                    "type": "mrkdwn",
                    "text": f"*Workflow*\n{safe.slack(view.workflow)} ({view.category})"
                    + (
                        "\n:double_vertical_bar: *paused* (kill switch)"
                        if view.workflow_paused
                        else ""
                    ),
                },
                {
                    "type": "mrkdwn",
                    "text": f"*Commander*\n{_mention(view.commander, safe)}",
                },
                {
                    "type": "mrkdwn",
                    "text": f"*Ticket*\n{_ticket_mrkdwn(view, safe, tickets)}",
                },
                {
                    "type": "mrkdwn",
                    "text": f"*Alerts*\n{view.alerts_firing} firing of {view.alerts_total}",
                },
            ],
        },
        {
            "type": "section",
            "text": {"type": "mrkdwn", "text": f"*Why {view.severity}*\n{reasons}"[:3000]},
        },
    ]
    pairs = _ai_context_pairs(view)
    if pairs:
        blocks.append(
            {
                "type": "context",
                "elements": [
                    {"type": "mrkdwn", "text": f"*{k}:* {safe.slack(v)}"[:3000]}
                    for k, v in pairs[:10]
                ],
            }
        )
    if last_hour is not None:
        line = last_hour_line(last_hour, safe.slack, _UTC)
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": line[:3000]}]})
    if view.changes:
        blocks += changes_blocks(view.changes, safe.slack, _UTC, title=BEFORE_INCIDENT)
    if view.state != "resolved":
        blocks.append(_card_actions(view))
    return blocks


DECLARE_VIEW_ID = "incident_declare"
DECLARE_TITLE_BLOCK = "declare_title"
DECLARE_TITLE_ACTION = "title"
DECLARE_SEVERITY_BLOCK = "declare_severity"
DECLARE_SEVERITY_ACTION = "severity"
DECLARE_WORKFLOW_BLOCK = "declare_workflow"
DECLARE_WORKFLOW_ACTION = "workflow"
DECLARE_REASON_BLOCK = "declare_reason"
DECLARE_REASON_ACTION = "reason"
DECLARE_TITLE_MAX = 150
DECLARE_REASON_MAX = 3000
_MAX_OPTIONS = 100  # Slack's limit for a static_select


def _option(value: str) -> dict[str, Any]:
    return {"text": {"type": "plain_text", "text": value[:75]}, "value": value}


def declare_modal(workflows: Sequence[str], channel: str) -> dict[str, Any]:
    """Return the `/ai-incident declare` form as a Block Kit modal view.

    `private_metadata` is ``{"channel": <id>}`` (JSON): where the command was typed, so the
    submission can be confirmed there. The workflow select is left out when there is no workflow.
    """
    severities = [_option(sev) for sev in ("P1", "P2", "P3")]
    blocks: list[dict[str, Any]] = [
        {
            "type": "input",
            "block_id": DECLARE_TITLE_BLOCK,
            "label": {"type": "plain_text", "text": "Title"},
            "element": {
                "type": "plain_text_input",
                "action_id": DECLARE_TITLE_ACTION,
                "max_length": DECLARE_TITLE_MAX,
                "placeholder": {"type": "plain_text", "text": "What is going wrong?"},
            },
        },
        {
            "type": "input",
            "block_id": DECLARE_SEVERITY_BLOCK,
            "optional": True,
            "label": {"type": "plain_text", "text": "Severity"},
            "element": {
                "type": "static_select",
                "action_id": DECLARE_SEVERITY_ACTION,
                "options": severities,
                "initial_option": severities[-1],
            },
        },
    ]
    # only values under Slack's 150-character option limit can be offered
    names = [w for w in workflows if 0 < len(w) <= 150][:_MAX_OPTIONS]
    if names:
        blocks.append(
            {
                "type": "input",
                "block_id": DECLARE_WORKFLOW_BLOCK,
                "optional": True,
                "label": {"type": "plain_text", "text": "Workflow"},
                "hint": {"type": "plain_text", "text": "Left empty: the default workflow."},
                "element": {
                    "type": "static_select",
                    "action_id": DECLARE_WORKFLOW_ACTION,
                    "placeholder": {"type": "plain_text", "text": "Choose a workflow"},
                    "options": [_option(w) for w in names],
                },
            }
        )
    blocks.append(
        {
            "type": "input",
            "block_id": DECLARE_REASON_BLOCK,
            "optional": True,
            "label": {"type": "plain_text", "text": "Description"},
            "hint": {"type": "plain_text", "text": "Why this severity, what you have seen."},
            "element": {
                "type": "plain_text_input",
                "action_id": DECLARE_REASON_ACTION,
                "multiline": True,
                "max_length": DECLARE_REASON_MAX,
            },
        }
    )
    return {
        "type": "modal",
        "callback_id": DECLARE_VIEW_ID,
        "title": {"type": "plain_text", "text": "Declare an incident"},
        "submit": {"type": "plain_text", "text": "Declare"},
        "close": {"type": "plain_text", "text": "Cancel"},
        "private_metadata": json.dumps({"channel": channel}),
        "blocks": blocks,
    }


def journal_text(entry: JournalView, safe: SafeText, *, slack: bool) -> str:
    """Return a journal entry as posted in the thread: one line per line of the entry."""
    out = safe.slack if slack else safe.plain
    author = out(entry.author)
    lines = entry.text.splitlines() or [""]
    return "\n".join(f"[{entry.kind}] {out(line)} — {author}" for line in lines)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _as_stored(text: str | None, *, limit: int | None = None) -> str:
    return "" if text is None else text


def _data_as_stored(value: object) -> object:
    return value


def export_json(view: IncidentView, safe: SafeText | None) -> dict[str, Any]:
    """Return the incident as a JSON-ready dict (export), redacted; `safe=None`: as stored."""
    t = _optional(safe.plain if safe is not None else _as_stored)
    d = safe.data if safe is not None else _data_as_stored
    return {
        "id": view.public_id,
        "title": t(view.title),
        "severity": view.severity,
        "severity_reasons": d(view.severity_reasons),
        "state": view.state,
        "workflow": t(view.workflow),
        "category": view.category,
        "source": t(view.source),
        "commander": t(view.commander),
        "jira_key": t(view.jira_key),
        "jira_url": t(view.jira_url),
        "slack": {"channel": view.slack_channel, "thread_ts": view.slack_ts},
        "root_cause": t(view.root_cause),
        "resolved_by": t(view.resolved_by),
        "milestones": {k: _iso(v) for k, v in view.milestones.items()},
        "ai_context": d(view.ai_context),
        "alerts": [
            {
                "fingerprint": t(a.fingerprint),
                "status": a.status,
                "title": t(a.title),
                "description": t(a.description),
                "labels": d(a.labels),
                "annotations": d(a.annotations),
                "links": d(a.links),
                "values": d(a.values),
                "signal": d(a.signal),
                "starts_at": _iso(a.starts_at),
                "ends_at": _iso(a.ends_at),
            }
            for a in view.alerts
        ],
        "journal": [
            {
                "id": j.id,
                "kind": j.kind,
                "text": t(j.text),
                "author": t(j.author),
                "via": j.via,
                "at": _iso(j.created_at),
                "edited_at": _iso(j.edited_at),
                "previous_text": t(j.previous_text),
                "deleted_at": _iso(j.deleted_at),
            }
            for j in view.journal
        ],
        "pages": [
            {
                "person": t(pg.person),
                "channel": pg.channel,
                "reason": t(pg.reason),
                "status": pg.status,
                "error": t(pg.error),
                "at": _iso(pg.created_at),
                "sent_at": _iso(pg.sent_at),
            }
            for pg in view.pages
        ],
    }


def _optional(text: Callable[[str | None], str]) -> Callable[[str | None], str | None]:
    """Keep None as None (JSON null); render every string."""
    return lambda value: None if value is None else text(value)


def _raw_cell(text: str | None) -> str:
    """A stored text as one table cell: one line, and no `|` that would end the cell."""
    return " ".join((text or "").split()).replace("|", "/")


def export_markdown(view: IncidentView, safe: SafeText | None) -> str:
    """Return the incident as a Markdown document (export), redacted and escaped.

    `safe=None` prints the stored text as it is (`export --raw`).
    """
    m: Callable[[str | None], str] = safe.markdown if safe is not None else _as_stored

    def cell(text: str | None) -> str:
        # escaped text holds no bare `|`: only line breaks would break the table
        return " ".join(m(text).split()) if safe is not None else _raw_cell(text)

    out = [
        f"# {view.public_id}: {m(view.title)}",
        "",
        f"- **Severity:** {view.severity}",
        f"- **State:** {view.state}",
        f"- **Workflow:** {m(view.workflow)} ({view.category})",
        f"- **Source:** {m(view.source)}",
        f"- **Commander:** {m(view.commander) or '—'}",
        f"- **Ticket:** {m(view.jira_key) or 'pending'}"
        + (f" ({m(view.jira_url)})" if view.jira_url else ""),
        f"- **Root cause:** {m(view.root_cause) or '—'}",
        "",
        "## Why this severity",
        "",
        *[
            f"- {r['severity']} `{str(r['rule']).replace('`', '')}`: {m(r['text'])}"
            for r in view.severity_reasons
        ],
        "",
        "## Milestones",
        "",
        *[f"- {k.replace('_', ' ')}: {_ts(v)}" for k, v in view.milestones.items()],
        "",
        "## AI context",
        "",
        *(
            [f"- {label}: {m(value)}" for label, value in _ai_context_pairs(view)]
            or ["- none carried"]
        ),
        "",
        "## Alerts",
        "",
        "| fingerprint | status | title | started | ended |",
        "|---|---|---|---|---|",
        *[
            f"| {cell(a.fingerprint)} | {a.status} | {cell(a.title)} | "
            f"{_ts(a.starts_at)} | {_ts(a.ends_at)} |"
            for a in view.alerts
        ],
        "",
        "## Journal",
        "",
    ]
    for j in view.journal:
        text = "~~deleted~~ " + m(j.text) if j.deleted_at else m(j.text)
        edited = f" (edited {_ts(j.edited_at)}; was: {m(j.previous_text)})" if j.edited_at else ""
        out.append(f"- {_ts(j.created_at)} **{j.kind}** {m(j.author)}: {text}{edited}")
    if view.pages:
        out += [
            "",
            "## Pages",
            "",
            "| at | person | channel | why | status |",
            "|---|---|---|---|---|",
        ]
        for pg in view.pages:
            status = f"{pg.status}: {cell(pg.error)}" if pg.error else pg.status
            out.append(
                f"| {_ts(pg.created_at)} | {cell(pg.person)} | {pg.channel} | "
                f"{cell(pg.reason)} | {status} |"
            )
    return "\n".join(out) + "\n"
