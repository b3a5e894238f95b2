"""Modal submissions of the review card: Edit & approve, and Reject (reason required)."""

from __future__ import annotations

import json
import logging
from typing import Any

from slack_bolt import Ack, BoltContext
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError

from bot.handoffs.domain import Decision
from bot.handoffs.runner import HandoffRunner
from bot.rendering.handoffs import (
    EDIT_OUTPUT_ACTION,
    EDIT_OUTPUT_BLOCK,
    REJECT_REASON_ACTION,
    REJECT_REASON_BLOCK,
)
from handlers.slack.views import _text

__all__ = ["handle_handoff_edit_submission", "handle_handoff_reject_submission"]

log = logging.getLogger(__name__)


def _metadata(view: dict[str, Any]) -> tuple[int | None, str | None]:
    """Return (handoff id, channel to answer in) from the form's private_metadata."""
    try:
        data = json.loads(view.get("private_metadata") or "")
    except (TypeError, ValueError):
        return None, None
    if not isinstance(data, dict):
        return None, None
    handoff = data.get("handoff")
    channel = data.get("channel")
    return (
        handoff if isinstance(handoff, int) else None,
        channel if isinstance(channel, str) and channel else None,
    )


def _tell(client: WebClient, channel: str | None, user: str, text: str) -> None:
    if channel is None or not user:
        return
    try:
        client.chat_postEphemeral(channel=channel, user=user, text=text)
    except SlackApiError as exc:
        log.warning(
            "could not confirm a handoff decision to %s: %s", user, exc.response.get("error")
        )
    except (SlackClientError, OSError) as exc:
        log.warning("could not confirm a handoff decision to %s: %s", user, exc)


def _decide(
    ack: Ack,
    body: dict[str, Any],
    view: dict[str, Any],
    client: WebClient,
    context: BoltContext,
    *,
    decision: Decision,
    block: str,
    action: str,
    missing: str,
) -> None:
    text = _text(view, block, action)
    if not text:
        ack(response_action="errors", errors={block: missing})
        return
    handoff_id, channel = _metadata(view)
    ack()
    user = str((body.get("user") or {}).get("id", ""))
    if handoff_id is None:
        _tell(client, channel, user, "That form lost track of its handoff; nothing was recorded.")
        return
    runner: HandoffRunner = context["handoffs"]
    # what goes wrong from here is answered by the app's error handler
    answer = runner.decide(
        handoff_id=handoff_id,
        user=user,
        decision=decision,
        edited_output=text if decision is Decision.EDITED else None,
        reason=text if decision is Decision.REJECTED else None,
    ).text
    _tell(client, channel, user, answer)


def handle_handoff_edit_submission(
    ack: Ack, body: dict[str, Any], view: dict[str, Any], client: WebClient, context: BoltContext
) -> None:
    """Approve with the corrected output (errors go back into the form)."""
    _decide(
        ack,
        body,
        view,
        client,
        context,
        decision=Decision.EDITED,
        block=EDIT_OUTPUT_BLOCK,
        action=EDIT_OUTPUT_ACTION,
        missing="Give the corrected output, or use Approve for the response as it is.",
    )


def handle_handoff_reject_submission(
    ack: Ack, body: dict[str, Any], view: dict[str, Any], client: WebClient, context: BoltContext
) -> None:
    """Reject with the reason given (a reason is required)."""
    _decide(
        ack,
        body,
        view,
        client,
        context,
        decision=Decision.REJECTED,
        block=REJECT_REASON_BLOCK,
        action=REJECT_REASON_ACTION,
        missing="Say why it is rejected; the agent receives the reason.",
    )
