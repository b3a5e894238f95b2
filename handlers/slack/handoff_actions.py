"""Review card buttons: Claim, Approve, Edit & approve, Reject, Release."""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt import Ack, BoltContext, Respond
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.handoffs.domain import Decision
from bot.handoffs.runner import Answer, HandoffRunner
from bot.rendering.handoffs import (
    APPROVE_ACTION_ID,
    CLAIM_ACTION_ID,
    EDIT_ACTION_ID,
    REJECT_ACTION_ID,
    RELEASE_ACTION_ID,
)

__all__ = ["HANDOFF_ACTIONS", "handle_handoff_action"]

log = logging.getLogger(__name__)

HANDOFF_ACTIONS = {
    CLAIM_ACTION_ID: "claim",
    APPROVE_ACTION_ID: "approve",
    EDIT_ACTION_ID: "edit",
    REJECT_ACTION_ID: "reject",
    RELEASE_ACTION_ID: "release",
}
NO_FORM = "Slack would not open the form (it must open within 3 seconds of the click); try again."


def _handoff_of(action: dict[str, Any]) -> int | None:
    raw = action.get("value") or str(action.get("block_id", "")).rpartition(":")[2]
    return int(raw) if str(raw).isdigit() else None


def _channel_of(body: dict[str, Any]) -> str | None:
    channel = (body.get("channel") or {}).get("id") or (body.get("container") or {}).get(
        "channel_id"
    )
    return str(channel) if channel else None


def _run(
    runner: HandoffRunner,
    kind: str,
    handoff_id: int,
    user: str,
    body: dict[str, Any],
    client: WebClient,
) -> str | None:
    """Do what the button says; return what to tell the user, if anything."""
    if kind in ("edit", "reject"):
        form = runner.form(
            kind="edit" if kind == "edit" else "reject",
            handoff_id=handoff_id,
            user=user,
            channel=_channel_of(body),
        )
        if isinstance(form, Answer):
            return form.text
        try:
            client.views_open(trigger_id=str(body.get("trigger_id", "")), view=form)
        except SlackApiError as exc:
            log.warning("views.open for a handoff form failed: %s", exc.response.get("error"))
            return NO_FORM
        return None
    if kind == "claim":
        return runner.claim(handoff_id=handoff_id, user=user).text
    if kind == "release":
        return runner.release(handoff_id=handoff_id, user=user).text
    return runner.decide(handoff_id=handoff_id, user=user, decision=Decision.APPROVED).text


def handle_handoff_action(
    ack: Ack,
    action: dict[str, Any],
    body: dict[str, Any],
    respond: Respond,
    context: BoltContext,
    client: WebClient,
) -> None:
    """Acknowledge at once; the card is refreshed by the delivery worker, the user told here."""
    ack()
    runner: HandoffRunner = context["handoffs"]
    handoff_id = _handoff_of(action)
    user = str((body.get("user") or {}).get("id", ""))
    if handoff_id is None:
        respond(
            text="That card is missing its handoff id.",
            response_type="ephemeral",
            replace_original=False,
        )
        return
    # what goes wrong from here is answered by the app's error handler
    answer = _run(runner, HANDOFF_ACTIONS[str(action["action_id"])], handoff_id, user, body, client)
    if answer:
        respond(text=answer, response_type="ephemeral", replace_original=False)
