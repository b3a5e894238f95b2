"""Pure renderers for a handoff's Jira ticket: summary, labels, description, decision comment.

The ticket carries the full context of §8 — the original request, the attempted response, the
error, the suggested actions, the proposed action with its arguments, the tier and why, the AI
context — in Jira wiki markup. Everything the agent sent is untrusted: it is redacted first (in
full, so clipping can never cut a secret in half and hide it from the patterns), then clipped,
then escaped, so it can neither leak a secret nor form Jira markup, mentions or links.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from bot.domain.redaction import SafeText
from bot.handoffs.domain import Decision, HandoffView, Tier
from bot.rendering.cards import AI_CONTEXT_LABELS
from bot.rendering.tickets import DESCRIPTION_LIMIT, SUMMARY_LIMIT, wiki_link

__all__ = [
    "TEXT_LIMIT",
    "handoff_decision_comment",
    "handoff_dedup_label",
    "handoff_description",
    "handoff_labels",
    "handoff_summary",
    "within_lines",
]

# one free-text field (request, response, error message, output): every section still fits
# Jira's 32,767-character field after it
TEXT_LIMIT = 6000
CELL_LIMIT = 1000
MAX_SUGGESTIONS = 25
_LABEL_UNSAFE = re.compile(r"\s+")

TIER_WORDS = {
    Tier.HUMAN: "human — the agent waits for the decision",
    Tier.REVIEW: "review — the agent went ahead; a reviewer checks after",
    Tier.AUTO: "auto — recorded only",
}
DECISION_WORDS = {
    Decision.APPROVED: "approved",
    Decision.EDITED: "approved with an edited output",
    Decision.REJECTED: "rejected",
}


def handoff_dedup_label(public_id: str) -> str:
    """Return the label only this handoff's ticket carries (how a retry finds it)."""
    return f"ai-handoff-{public_id}"


def _label(text: str) -> str:
    return _LABEL_UNSAFE.sub("-", text.strip())[:255]


def handoff_labels(
    view: HandoffView, safe: SafeText, *, category: str | None, extra: Iterable[str] = ()
) -> tuple[str, ...]:
    """Return `ai-incident`, `ai-handoff`, the workflow, its category, the tier, then any extra."""
    out: list[str] = []
    for raw in (
        "ai-incident",
        "ai-handoff",
        safe.plain(view.workflow),
        category or "",
        view.tier.value,
        *extra,
    ):
        label = _label(raw)
        if label and label not in out:
            out.append(label)
    return tuple(out)


def _one_line(value: Any) -> str:
    return " ".join(str(value).split()) if value is not None else ""


def _request_summary(view: HandoffView) -> str:
    return _one_line(view.request.get("summary")) or view.reason.replace("_", " ")


def handoff_summary(view: HandoffView, safe: SafeText) -> str:
    """Return `[HO-3] human support-chatbot: <request summary>` on one line, redacted."""
    workflow = _one_line(safe.plain(view.workflow))
    summary = _one_line(safe.plain(_request_summary(view)))
    return f"[{view.public_id}] {view.tier.value} {workflow}: {summary}"[:SUMMARY_LIMIT]


def _text(value: Any, safe: SafeText, limit: int = TEXT_LIMIT) -> str:
    """Untrusted text: redacted in full, clipped, then escaped for Jira."""
    return safe.jira(str(value), limit=limit)


def _inline(value: Any, safe: SafeText, limit: int = CELL_LIMIT) -> str:
    """Untrusted text on one line (a field value or a table cell)."""
    return _text(_one_line(value), safe, limit)


def _json_value(value: Any, safe: SafeText) -> str:
    """A structured value as compact JSON, its secret-named keys blanked and strings redacted."""
    if isinstance(value, str):
        return value
    redacted = safe.redactor.redact_obj(value)
    return json.dumps(redacted, ensure_ascii=False, sort_keys=True, default=str)


def _table(head: tuple[str, str], rows: Iterable[tuple[Any, Any]], safe: SafeText) -> list[str]:
    # a cell is one line; an empty cell would merge with its neighbour
    body = [
        f"|{_inline(k, safe) or ' '}|{_inline(v, safe) or ' '}|"
        for k, v in rows
        if v not in (None, "")
    ]
    return [f"||{head[0]}||{head[1]}||", *body] if body else []


def _mapping_rows(mapping: dict[str, Any], safe: SafeText) -> list[tuple[str, str]]:
    # sensitive keys are blanked by looking at the whole mapping, so redact it as one object
    redacted = safe.redactor.redact_obj(mapping)
    assert isinstance(redacted, dict)
    return [(str(k), _json_value(redacted[k], safe)) for k in sorted(redacted, key=str)]


def _quote(text: str | None, safe: SafeText) -> list[str]:
    if not text or not text.strip():
        return ["None."]
    return ["{quote}", _text(text, safe), "{quote}"]


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S UTC") if value else "—"


def _head(
    view: HandoffView, safe: SafeText, *, category: str | None, card_link: str | None
) -> list[str]:
    confidence = (
        f"{view.confidence:.2f} (band {view.confidence_band})"
        if view.confidence is not None
        else "not given"
    )
    workflow = _inline(view.workflow, safe)
    workflow += f" ({category})" if category else " (not in the policy file)"
    agent = _inline(view.agent_id, safe) or "unknown"
    if view.agent_version:
        agent += f" {_inline(view.agent_version, safe)}"
    lines = [
        f"h2. {view.public_id}: {_inline(_request_summary(view), safe)}",
        "",
        f"*Tier:* {TIER_WORDS[view.tier]}",
        f"*Why this tier:* {_inline(view.tier_reason, safe)}",
        f"*Confidence:* {confidence}",
        f"*Reason:* {_inline(view.reason, safe)}",
        f"*Workflow:* {workflow}",
        f"*Agent:* {agent}",
        f"*Status:* {view.status.value}",
        f"*Received:* {_when(view.received_at)}",
    ]
    if view.claim_due_at is not None or view.decide_due_at is not None:
        lines.append(
            f"*Claim by:* {_when(view.claim_due_at)}   *Decide by:* {_when(view.decide_due_at)}"
        )
    lines.append(
        "*Review card:* "
        + (
            wiki_link(f"{view.public_id} in Slack", card_link, safe)
            if card_link
            else "in the review channel in Slack"
        )
    )
    return lines


def _request(view: HandoffView, safe: SafeText) -> list[str]:
    req = view.request
    lines = [f"*Summary:* {_inline(req.get('summary'), safe) or '—'}"]
    lines.append(
        f"*From:* {_inline(req.get('user'), safe) or '—'}   "
        f"*Channel:* {_inline(req.get('channel'), safe) or '—'}"
    )
    if req.get("text"):
        lines += _quote(str(req["text"]), safe)
    return lines


def _error(view: HandoffView, safe: SafeText) -> list[str]:
    if not view.error:
        return ["None."]
    return [
        f"*Type:* {_inline(view.error.get('type'), safe) or '—'}",
        f"*Message:* {_text(_one_line(view.error.get('message')), safe) or '—'}",
    ]


def _suggested(view: HandoffView, safe: SafeText) -> list[str]:
    actions = view.suggested_actions
    if not actions:
        return ["None."]
    lines = [f"* {_inline(a, safe)}" for a in actions[:MAX_SUGGESTIONS]]
    if len(actions) > MAX_SUGGESTIONS:
        lines.append(f"… and {len(actions) - MAX_SUGGESTIONS} more")
    return lines


def _proposed(view: HandoffView, safe: SafeText) -> list[str]:
    action = view.proposed_action
    if not action:
        return ["None."]
    lines = [f"*Action:* {_inline(action.get('name'), safe) or 'unnamed'}"]
    args = action.get("args")
    if isinstance(args, dict):
        lines += _table(("Argument", "Value"), _mapping_rows(args, safe), safe) or ["No arguments."]
    elif args not in (None, [], ""):
        lines.append(f"*Arguments:* {_inline(_json_value(args, safe), safe)}")
    return lines


def handoff_description(
    view: HandoffView, safe: SafeText, *, category: str | None, card_link: str | None
) -> str:
    """Return the ticket description: everything a reviewer needs to decide, in one place."""
    lines = _head(view, safe, category=category, card_link=card_link)
    lines += ["", "h3. Original request", *_request(view, safe)]
    lines += ["", "h3. Attempted response", *_quote(view.attempted_response, safe)]
    lines += ["", "h3. Error", *_error(view, safe)]
    lines += ["", "h3. Suggested actions", *_suggested(view, safe)]
    lines += ["", "h3. Proposed action", *_proposed(view, safe)]
    lines += ["", "h3. Context"]
    lines += _table(("Field", "Value"), _mapping_rows(view.context, safe), safe) or ["None."]
    pairs = [(label, view.ai_context.get(key)) for key, label in AI_CONTEXT_LABELS.items()]
    lines += ["", "h3. AI context"]
    lines += _table(("Field", "Value"), pairs, safe) or ["None carried by the handoff."]
    return within_lines(lines, DESCRIPTION_LIMIT)


def handoff_decision_comment(view: HandoffView, safe: SafeText, *, decided_by: str) -> str:
    """Return the decision as a comment (markup): what was decided, by whom, and the output."""
    if view.decision is None:
        raise ValueError(f"{view.public_id} is not decided")
    head = (
        f"*{view.public_id} {DECISION_WORDS[view.decision]}* by {_inline(decided_by, safe)} "
        f"at {_when(view.decided_at)}."
    )
    if view.decision is Decision.APPROVED:
        return within_lines([head, "The agent's response stands as it was."], DESCRIPTION_LIMIT)
    if view.decision is Decision.EDITED:
        lines = [
            head,
            "The corrected output the agent receives:",
            *_quote(view.edited_output, safe),
        ]
    else:
        lines = [head, "The reason, as the agent receives it:", *_quote(view.reject_reason, safe)]
    return within_lines(lines, DESCRIPTION_LIMIT)


def within_lines(lines: list[str], limit: int, *, note: str = "see the Slack review card") -> str:
    """Join lines, cutting at a line boundary so no escape, quote or link is split."""
    out: list[str] = []
    size = 0
    for line in lines:
        if size + len(line) + 1 > limit - 80:
            # escaped text never reads `{quote}`: every one counted here is ours
            if out.count("{quote}") % 2:
                out.append("{quote}")
            out.append(f"… (cut to fit Jira's field limit; {note})")
            break
        out.append(line)
        size += len(line) + 1
    return "\n".join(out)
