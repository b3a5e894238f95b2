"""Incident card buttons and the severity select."""

from __future__ import annotations

from typing import Any

from slack_bolt import Ack, BoltContext, Respond

from bot.rendering.cards import (
    ACK_ACTION_ID,
    ESCALATE_ACTION_ID,
    PAUSE_ACTION_ID,
    RESOLVE_ACTION_ID,
    RESUME_ACTION_ID,
    SEVERITY_ACTION_ID,
)
from bot.services.commands import CommandRunner

__all__ = ["ACTIONS", "handle_card_action"]

ACTIONS = {
    ACK_ACTION_ID: "ack",
    RESOLVE_ACTION_ID: "resolve",
    ESCALATE_ACTION_ID: "escalate",
    SEVERITY_ACTION_ID: "severity",
    PAUSE_ACTION_ID: "pause",
    RESUME_ACTION_ID: "resume",
}


def _incident_of(action: dict[str, Any]) -> int | None:
    raw = action.get("value") or str(action.get("block_id", "")).rpartition(":")[2]
    return int(raw) if str(raw).isdigit() else None


def handle_card_action(
    ack: Ack, action: dict[str, Any], body: dict[str, Any], respond: Respond, context: BoltContext
) -> None:
    """Acknowledge at once; the card itself is refreshed by the delivery worker."""
    ack()
    runner: CommandRunner = context["commands"]
    incident_id = _incident_of(action)
    user = str((body.get("user") or {}).get("id", ""))
    if incident_id is None:
        respond(
            text="That card is missing its incident id.",
            response_type="ephemeral",
            replace_original=False,
        )
        return
    selected = (action.get("selected_option") or {}).get("value")
    # what goes wrong from here is answered by the app's error handler
    refusal = runner.press(
        action=ACTIONS[str(action["action_id"])],
        incident_id=incident_id,
        user=user,
        value=selected,
    )
    if refusal:
        respond(text=refusal, response_type="ephemeral", replace_original=False)
