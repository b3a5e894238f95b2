"""Pure renderers for pages: the Slack DM (text and Block Kit) and the thread mention."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bot.domain.redaction import SafeText
from bot.paging.providers.ports import PageMessage
from bot.rendering.cards import ACK_ACTION_ID, SEVERITY_MARK

__all__ = ["PAGE_ACTIONS_BLOCK", "dm_blocks", "dm_text", "mention_text"]

PAGE_ACTIONS_BLOCK = "page_actions"


def _where(message: PageMessage) -> str:
    if message.slack_channel and message.slack_channel.startswith(("C", "G")):
        return f" The incident thread is in <#{message.slack_channel}>."
    return ""


def dm_text(message: PageMessage, safe: SafeText) -> str:
    """Return the page as one paragraph of Slack mrkdwn (also the notification text)."""
    mark = SEVERITY_MARK.get(message.severity, "")
    ack = (
        f" Acknowledge with the button below or `/ai-incident ack {message.public_id}`."
        if message.state == "triggered"
        else f" It is {message.state}."
    )
    return (
        f"{mark} You are paged for {message.public_id} [{message.severity}] "
        f"{safe.slack(message.title)} (workflow {safe.slack(message.workflow)}): "
        f"{safe.slack(message.reason)}.{ack}{_where(message)}"
    ).strip()


def dm_blocks(message: PageMessage, safe: SafeText) -> list[dict[str, Any]]:
    """Return the page as Block Kit: the text, the severity reasons, an Acknowledge button."""
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": dm_text(message, safe)[:3000]}}
    ]
    if message.severity_reasons:
        reasons = "\n".join(f"• {safe.slack(r)}" for r in message.severity_reasons[:5])
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": reasons[:3000]}]})
    if message.state == "triggered":
        blocks.append(
            {
                "type": "actions",
                "block_id": f"{PAGE_ACTIONS_BLOCK}:{message.incident_id}",
                "elements": [
                    {
                        "type": "button",
                        "action_id": ACK_ACTION_ID,
                        "text": {"type": "plain_text", "text": "Acknowledge"},
                        "style": "primary",
                        "value": str(message.incident_id),
                    }
                ],
            }
        )
    return blocks


def mention_text(
    users: Sequence[str], groups: Sequence[str], severity: str, role: str = "AI lead"
) -> str:
    """Return a thread reply that mentions (and so notifies) the given users and user groups.

    Slack ids only: the mention syntax is built here from ids the policy file holds, never
    from text anyone else wrote.
    """
    who = [f"<@{u}>" for u in users if u.isalnum()]
    who += [f"<!subteam^{g}>" for g in groups if g.isalnum()]
    names = " ".join(who) or "nobody"
    return f"{names}: this incident is {severity}; you are notified as {role}."
