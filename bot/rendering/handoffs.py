"""Pure renderers for handoffs: the review card (Block Kit and text), modals, thread lines, lists.

Everything an agent sent is untrusted: it goes through `SafeText` (redaction, clipping, then
escaping), so it can neither leak a secret, mention anyone nor form a link. Only what the bot builds itself (user mentions
of Slack ids it received from Slack, dates) is left as markup.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from bot.domain.redaction import SafeText
from bot.handoffs.domain import Decision, HandoffStatus, HandoffView, Tier
from bot.rendering.cards import AI_CONTEXT_LABELS

__all__ = [
    "APPROVE_ACTION_ID",
    "CLAIM_ACTION_ID",
    "EDIT_ACTION_ID",
    "EDIT_OUTPUT_ACTION",
    "EDIT_OUTPUT_BLOCK",
    "EDIT_VIEW_ID",
    "HANDOFF_ACTIONS_BLOCK",
    "MODAL_TEXT_MAX",
    "REJECT_ACTION_ID",
    "REJECT_REASON_ACTION",
    "REJECT_REASON_BLOCK",
    "REJECT_VIEW_ID",
    "RELEASE_ACTION_ID",
    "edit_modal",
    "handoff_card_blocks",
    "handoff_card_text",
    "queue_text",
    "reject_modal",
    "thread_text",
]

CLAIM_ACTION_ID = "handoff_claim"
APPROVE_ACTION_ID = "handoff_approve"
EDIT_ACTION_ID = "handoff_edit"
REJECT_ACTION_ID = "handoff_reject"
RELEASE_ACTION_ID = "handoff_release"
HANDOFF_ACTIONS_BLOCK = "handoff_actions"

EDIT_VIEW_ID = "handoff_edit"
EDIT_OUTPUT_BLOCK = "handoff_output"
EDIT_OUTPUT_ACTION = "output"
REJECT_VIEW_ID = "handoff_reject"
REJECT_REASON_BLOCK = "handoff_reason"
REJECT_REASON_ACTION = "reason"
MODAL_TEXT_MAX = 3000  # Slack's limit for a plain_text_input

SECTION_MAX = 3000
FIELD_MAX = 2000
CONTEXT_ELEMENTS_MAX = 10

TIER_MARK = {Tier.HUMAN: ":raising_hand:", Tier.REVIEW: ":mag:", Tier.AUTO: ":robot_face:"}
TIER_WORDS = {
    Tier.HUMAN: "human decision — the agent waits",
    Tier.REVIEW: "review — the agent went ahead, check it",
    Tier.AUTO: "auto — recorded only",
}
DECISION_WORDS = {
    Decision.APPROVED: "approved",
    Decision.EDITED: "approved with an edited output",
    Decision.REJECTED: "rejected",
}
_SLACK_USER = re.compile(r"^[UW][A-Z0-9]{2,}$")


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: max(limit - 1, 0)] + "…"


def _user(user: str | None, safe: SafeText, *, slack: bool) -> str:
    """Mention a Slack user id in Slack; anything that is not one is shown as inert text."""
    if not user:
        return "nobody"
    if slack and _SLACK_USER.match(user):
        return f"<@{user}>"
    return safe.slack(user) if slack else safe.plain(user)


def _when(value: datetime | None, *, slack: bool) -> str:
    """A time Slack shows in the reader's own time zone; plain UTC elsewhere."""
    if value is None:
        return "—"
    fallback = f"{value:%Y-%m-%d %H:%M} UTC"
    if not slack:
        return fallback
    return f"<!date^{int(value.timestamp())}^{{date_short_pretty}} {{time}}|{fallback}>"


def _ago(now: datetime, then: datetime) -> str:
    minutes = max(int((now - then).total_seconds() // 60), 0)
    if minutes < 60:
        return f"{minutes}m"
    hours, rest = divmod(minutes, 60)
    if hours < 48:
        return f"{hours}h{rest:02d}m" if rest else f"{hours}h"
    return f"{hours // 24}d"


def _json(value: Any, safe: SafeText, *, compact: bool = False) -> str:
    redacted = safe.redactor.redact_obj(value)
    if compact:
        return json.dumps(redacted, ensure_ascii=False, sort_keys=True, default=str)
    return json.dumps(redacted, ensure_ascii=False, indent=1, sort_keys=True, default=str)


# -- the parts of the card ---------------------------------------------------------------------


def _status(view: HandoffView, safe: SafeText, now: datetime, *, slack: bool) -> str:
    who = _user(view.claimed_by, safe, slack=slack)
    if view.status is HandoffStatus.QUEUED:
        return "queued — nobody holds it"
    if view.status is HandoffStatus.CLAIMED:
        if view.holder(now) is None:
            return f"lease of {who} expired — back to the queue"
        return f"claimed by {who} until {_when(view.lease_until, slack=slack)}"
    if view.status is HandoffStatus.RECORDED:
        return "recorded (auto tier)"
    words = DECISION_WORDS[Decision(view.status.value)]
    return f"{words} by {_user(view.decided_by, safe, slack=slack)}"


def _sla(view: HandoffView, now: datetime, *, slack: bool) -> str:
    if not view.is_open or (view.claim_due_at is None and view.decide_due_at is None):
        return "—"
    lines = []
    for label, due, running in (
        ("claim by", view.claim_due_at, view.status is HandoffStatus.QUEUED),
        ("decide by", view.decide_due_at, True),
    ):
        if due is None or not running:
            continue
        missed = " — *missed*" if slack and now > due else " (missed)" if now > due else ""
        lines.append(f"{label} {_when(due, slack=slack)}{missed}")
    return "\n".join(lines) or "—"


def _ai_context_pairs(view: HandoffView) -> list[tuple[str, str]]:
    return [
        (label, str(view.ai_context[key]))
        for key, label in AI_CONTEXT_LABELS.items()
        if view.ai_context.get(key) not in (None, "")
    ]


def _header(view: HandoffView, safe: SafeText) -> dict[str, Any]:
    summary = view.request.get("summary") or view.reason.replace("_", " ")
    text = f"{view.public_id} {safe.slack_plain(str(summary), limit=149 - len(view.public_id))}"
    return {"type": "header", "text": {"type": "plain_text", "text": _clip(text, 150)}}


def _fields(view: HandoffView, safe: SafeText, now: datetime) -> dict[str, Any]:
    confidence = f"{view.confidence:.2f}" if view.confidence is not None else "not given"
    agent = safe.slack(view.agent_id) or "unknown"
    if view.agent_version:
        agent += f" {safe.slack(view.agent_version)}"
    workflow = safe.slack(view.workflow)
    if not view.workflow_known:
        workflow += " (not in the policy file)"
    fields = [
        f"*Tier*\n{TIER_MARK[view.tier]} {TIER_WORDS[view.tier]}\n{safe.slack(view.tier_reason)}",
        f"*Status*\n{_status(view, safe, now, slack=True)}",
        f"*Confidence*\n{confidence}",
        f"*Reason*\n{safe.slack(view.reason)}",
        f"*Workflow*\n{workflow}",
        f"*Agent*\n{agent}",
        f"*SLA*\n{_sla(view, now, slack=True)}",
    ]
    if view.jira_key:
        fields.append(f"*Ticket*\n{safe.slack(view.jira_key)}")
    if view.callback_url:
        # the reviewer sees where the decision will be sent
        fields.append(
            f"*Callback to*\n{safe.slack(urlsplit(view.callback_url).netloc.rpartition('@')[2])}"
        )
    return {
        "type": "section",
        "fields": [{"type": "mrkdwn", "text": _clip(f, FIELD_MAX)} for f in fields],
    }


def _quoted(text: str, safe: SafeText, limit: int) -> str:
    """Untrusted multi-line text as a block quote, redacted, clipped and escaped."""
    lines = safe.slack(text, limit=limit).splitlines() or [""]
    return "\n".join(f">{line}" for line in lines)


def _section(title: str, body: str) -> dict[str, Any]:
    return {
        "type": "section",
        "text": {"type": "mrkdwn", "text": _clip(f"*{title}*\n{body}", SECTION_MAX)},
    }


def _request(view: HandoffView, safe: SafeText) -> dict[str, Any] | None:
    req = view.request
    parts = []
    who = [
        f"from {safe.slack(str(req['user']))}" if req.get("user") else "",
        f"in {safe.slack(str(req['channel']))}" if req.get("channel") else "",
    ]
    if any(who):
        parts.append(" ".join(w for w in who if w))
    if req.get("text"):
        parts.append(_quoted(str(req["text"]), safe, 1500))
    elif req.get("summary"):
        parts.append(_quoted(str(req["summary"]), safe, 1500))
    return _section("Original request", "\n".join(parts)) if parts else None


def _attempted(view: HandoffView, safe: SafeText) -> dict[str, Any] | None:
    if not view.attempted_response:
        return None
    return _section("Attempted response", _quoted(view.attempted_response, safe, 2400))


def _error(view: HandoffView, safe: SafeText) -> dict[str, Any] | None:
    if not view.error:
        return None
    kind = safe.slack(str(view.error.get("type") or "error"))
    message = _quoted(str(view.error.get("message") or ""), safe, 2000)
    return _section("Error", f"`{kind}`\n{message}")


def _suggested(view: HandoffView, safe: SafeText) -> dict[str, Any] | None:
    if not view.suggested_actions:
        return None
    items = [f"• {safe.slack(a, limit=300)}" for a in view.suggested_actions[:10]]
    if len(view.suggested_actions) > 10:
        items.append(f"… and {len(view.suggested_actions) - 10} more")
    return _section("Suggested actions", "\n".join(items))


def _code(text: str, safe: SafeText, limit: int) -> str:
    # ``` inside agent text would end the block early; a look-alike keeps it inert
    body = safe.slack(text, limit=limit).replace("```", "`\u2060``")
    return f"```{body}```"


def _proposed(view: HandoffView, safe: SafeText) -> dict[str, Any] | None:
    action = view.proposed_action
    if not action:
        return None
    name = safe.slack(str(action.get("name") or "unnamed"))
    args = action.get("args")
    body = f"`{name}`"
    if args not in (None, {}, []):
        body += "\n" + _code(_json(args, safe), safe, 2000)
    return _section("Proposed action", body)


def _context(view: HandoffView, safe: SafeText) -> dict[str, Any] | None:
    if not view.context:
        return None
    return _section("Context", _code(_json(view.context, safe), safe, 2400))


def _ai_context(view: HandoffView, safe: SafeText) -> list[dict[str, Any]]:
    pairs = _ai_context_pairs(view)
    return [
        {
            "type": "context",
            "elements": [
                {"type": "mrkdwn", "text": _clip(f"*{k}:* {safe.slack(v)}", SECTION_MAX)}
                for k, v in pairs[i : i + CONTEXT_ELEMENTS_MAX]
            ],
        }
        for i in range(0, len(pairs), CONTEXT_ELEMENTS_MAX)
    ]


def _button(action_id: str, text: str, value: str, **extra: Any) -> dict[str, Any]:
    return {
        "type": "button",
        "action_id": action_id,
        "text": {"type": "plain_text", "text": text},
        "value": value,
        **extra,
    }


def _actions(view: HandoffView) -> dict[str, Any]:
    value = str(view.id)
    approve_confirm = {
        "title": {"type": "plain_text", "text": "Approve as it is?"},
        "text": {
            "type": "plain_text",
            "text": f"The agent's response to {view.public_id} is approved unchanged.",
        },
        "confirm": {"type": "plain_text", "text": "Approve"},
        "deny": {"type": "plain_text", "text": "Cancel"},
    }
    return {
        "type": "actions",
        "block_id": f"{HANDOFF_ACTIONS_BLOCK}:{view.id}",
        "elements": [
            _button(CLAIM_ACTION_ID, "Claim", value, style="primary"),
            _button(APPROVE_ACTION_ID, "Approve", value, confirm=approve_confirm),
            _button(EDIT_ACTION_ID, "Edit & approve", value),
            _button(REJECT_ACTION_ID, "Reject", value, style="danger"),
            _button(RELEASE_ACTION_ID, "Release", value),
        ],
    }


def _decision(view: HandoffView, safe: SafeText) -> dict[str, Any] | None:
    if view.decision is None:
        return None
    who = _user(view.decided_by, safe, slack=True)
    head = f"{DECISION_WORDS[view.decision].capitalize()} by {who} at {_when(view.decided_at, slack=True)}"
    if view.decision is Decision.EDITED and view.edited_output:
        return _section("Decision", f"{head}\n{_quoted(view.edited_output, safe, 2400)}")
    if view.decision is Decision.REJECTED:
        return _section("Decision", f"{head}\n{_quoted(view.reject_reason or '', safe, 2400)}")
    return _section("Decision", head)


def handoff_card_blocks(view: HandoffView, safe: SafeText, now: datetime) -> list[dict[str, Any]]:
    """Return the review card as Block Kit blocks: full context, who holds it, the SLA clock."""
    optional = [
        _request(view, safe),
        _attempted(view, safe),
        _error(view, safe),
        _suggested(view, safe),
        _proposed(view, safe),
        _context(view, safe),
    ]
    blocks: list[dict[str, Any]] = [_header(view, safe), _fields(view, safe, now)]
    blocks += [b for b in optional if b is not None]
    blocks += _ai_context(view, safe)
    decision = _decision(view, safe)
    if decision is not None:
        blocks.append(decision)
    if view.is_open:
        blocks.append(_actions(view))
    return blocks


def handoff_card_text(
    view: HandoffView, safe: SafeText, now: datetime, *, slack: bool = False
) -> str:
    """Return the card as text: Slack's notification fallback (`slack`) or the local console.

    Slack reads mentions and links in a message's fallback text too, so there it is escaped
    like the blocks.
    """
    out = safe.slack if slack else safe.plain
    req = view.request
    clip = 500
    confidence = f"{view.confidence:.2f}" if view.confidence is not None else "not given"
    lines = [
        f"{view.public_id} [{view.tier.value}] {out(str(req.get('summary') or view.reason))}",
        f"  status: {_status(view, safe, now, slack=slack)}",
        f"  workflow: {out(view.workflow)}   agent: {out(view.agent_id) or 'unknown'}"
        f"   reason: {out(view.reason)}   confidence: {confidence}",
        f"  tier: {out(view.tier_reason)}",
    ]
    if view.is_open:
        lines.append("  SLA: " + _sla(view, now, slack=False).replace("\n", "; "))
    if req.get("text"):
        lines.append(f"  request: {out(str(req['text']), limit=clip)}")
    if view.attempted_response:
        lines.append(f"  attempted: {out(view.attempted_response, limit=clip)}")
    if view.error:
        lines.append(
            f"  error: {out(str(view.error.get('type') or 'error'))}: "
            f"{out(str(view.error.get('message') or ''), limit=clip)}"
        )
    for action in view.suggested_actions[:10]:
        lines.append(f"  suggested: {out(action, limit=300)}")
    if view.proposed_action:
        args = _json(view.proposed_action.get("args"), safe, compact=True)
        lines.append(
            f"  proposed: {out(str(view.proposed_action.get('name') or 'unnamed'))} "
            f"{out(args, limit=clip)}"
        )
    pairs = _ai_context_pairs(view)
    if pairs:
        lines.append("  AI context: " + ", ".join(f"{k} {out(v)}" for k, v in pairs))
    if view.decision is Decision.REJECTED:
        lines.append(f"  reject reason: {out(view.reject_reason)}")
    if view.decision is Decision.EDITED:
        lines.append(f"  edited output: {out(view.edited_output, limit=clip)}")
    return "\n".join(lines)


# -- modals ------------------------------------------------------------------------------------


def _metadata(view: HandoffView, channel: str | None) -> str:
    return json.dumps({"handoff": view.id, "channel": channel})


def _modal_intro(view: HandoffView, safe: SafeText) -> dict[str, Any]:
    summary = view.request.get("summary") or view.reason
    return {
        "type": "section",
        "text": {
            "type": "mrkdwn",
            "text": _clip(
                f"*{view.public_id}* · {safe.slack(view.workflow)} · {safe.slack(str(summary))}",
                SECTION_MAX,
            ),
        },
    }


def edit_modal(view: HandoffView, safe: SafeText, channel: str | None) -> dict[str, Any]:
    """Return the Edit & approve form: the corrected output, starting from the agent's response.

    `private_metadata` is ``{"handoff": <id>, "channel": <review channel>}`` (JSON).
    """
    element: dict[str, Any] = {
        "type": "plain_text_input",
        "action_id": EDIT_OUTPUT_ACTION,
        "multiline": True,
        "max_length": MODAL_TEXT_MAX,
    }
    initial = safe.plain(view.attempted_response)
    if initial:
        element["initial_value"] = initial[:MODAL_TEXT_MAX]
    hint = "The agent receives this text as the approved output."
    if len(initial) > MODAL_TEXT_MAX:
        hint = f"The response was longer than {MODAL_TEXT_MAX} characters and starts cut here."
    return {
        "type": "modal",
        "callback_id": EDIT_VIEW_ID,
        "title": {"type": "plain_text", "text": "Edit & approve"},
        "submit": {"type": "plain_text", "text": "Approve"},
        "close": {"type": "plain_text", "text": "Cancel"},
        "private_metadata": _metadata(view, channel),
        "blocks": [
            _modal_intro(view, safe),
            {
                "type": "input",
                "block_id": EDIT_OUTPUT_BLOCK,
                "label": {"type": "plain_text", "text": "Corrected output"},
                "hint": {"type": "plain_text", "text": hint},
                "element": element,
            },
        ],
    }


def reject_modal(view: HandoffView, safe: SafeText, channel: str | None) -> dict[str, Any]:
    """Return the Reject form; the reason is required."""
    return {
        "type": "modal",
        "callback_id": REJECT_VIEW_ID,
        "title": {"type": "plain_text", "text": "Reject"},
        "submit": {"type": "plain_text", "text": "Reject"},
        "close": {"type": "plain_text", "text": "Cancel"},
        "private_metadata": _metadata(view, channel),
        "blocks": [
            _modal_intro(view, safe),
            {
                "type": "input",
                "block_id": REJECT_REASON_BLOCK,
                "label": {"type": "plain_text", "text": "Why is it rejected?"},
                "hint": {"type": "plain_text", "text": "The agent receives this reason."},
                "element": {
                    "type": "plain_text_input",
                    "action_id": REJECT_REASON_ACTION,
                    "multiline": True,
                    "max_length": MODAL_TEXT_MAX,
                },
            },
        ],
    }


# -- thread lines and lists --------------------------------------------------------------------


def _parse_time(value: object) -> datetime | None:
    return datetime.fromisoformat(value) if isinstance(value, str) else None


def thread_text(public_id: str, line: Mapping[str, Any], safe: SafeText, *, slack: bool) -> str:
    """Return one line of the card's thread from its recorded event."""
    event = line.get("event")
    actor = _user(line.get("actor"), safe, slack=slack)
    until = _when(_parse_time(line.get("until")), slack=slack)
    if event == "claimed":
        return f"{public_id} claimed by {actor} until {until}."
    if event == "renewed":
        return f"{actor} renewed the claim on {public_id} until {until}."
    if event == "released":
        return f"{public_id} released by {actor}; back in the queue."
    if event == "expired":
        return f"The claim of {actor} on {public_id} expired; back in the queue."
    if event == "decided":
        decision = Decision(str(line.get("decision")))
        text = f"{public_id} {DECISION_WORDS[decision]} by {actor}"
        reason = line.get("reason")
        if decision is Decision.REJECTED and reason:
            shown = safe.slack(str(reason)) if slack else safe.plain(str(reason))
            text += f": {shown}"
        return text + "."
    if event == "sla":
        return _sla_text(public_id, line, safe, slack=slack)
    return f"{public_id}: {safe.slack(str(event)) if slack else safe.plain(str(event))}"


def _sla_text(public_id: str, line: Mapping[str, Any], safe: SafeText, *, slack: bool) -> str:
    due = _parse_time(line.get("due"))
    at = _parse_time(line.get("at"))
    late = f" ({_ago(at, due)} late)" if due is not None and at is not None else ""
    if line.get("clock") == "claim":
        what = f"{public_id} has not been claimed: the claim SLA ended {_when(due, slack=slack)}{late}."
    else:
        holder = line.get("holder")
        held = f" (held by {_user(holder, safe, slack=slack)})" if holder else ""
        what = f"{public_id} has no decision{held}: the decide SLA ended {_when(due, slack=slack)}{late}."
    oncall = [_user(u, safe, slack=slack) for u in line.get("oncall") or []]
    who = " ".join(oncall) or "nobody is on call"
    mark = ":alarm_clock: " if slack else ""
    action = line.get("action")
    if action == "remind":
        return f"{mark}{what} Reviewers, please take it."
    if action == "oncall":
        return f"{mark}{who}: {what}"
    if line.get("paged"):
        return f"{mark}{what} Paging on-call: {who}."
    return f"{mark}{what} No pager is connected yet; on-call: {who}."


def queue_text(views: Sequence[HandoffView], total: int, safe: SafeText, now: datetime) -> str:
    """Return the open handoffs as the `/ai-incident handoffs` answer (Slack mrkdwn)."""
    if not views:
        return "No handoffs are waiting for review."
    lines = []
    for view in views:
        summary = safe.slack(str(view.request.get("summary") or view.reason), limit=80)
        state = _status(view, safe, now, slack=True)
        sla = _sla(view, now, slack=True).replace("\n", ", ")
        lines.append(
            f"• *{view.public_id}* [{view.tier.value}] {safe.slack(view.workflow)} — {summary} — "
            f"{state}, waiting {_ago(now, view.received_at)}" + (f"; {sla}" if sla != "—" else "")
        )
    if total > len(views):
        lines.append(f"… and {total - len(views)} more.")
    return f"{total} open handoff(s):\n" + "\n".join(lines)
