"""Modal submissions: the declare form."""

from __future__ import annotations

import json
import logging
from typing import Any

from slack_bolt import Ack, BoltContext
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError

from bot.domain.severity import Severity
from bot.rendering.cards import (
    DECLARE_REASON_ACTION,
    DECLARE_REASON_BLOCK,
    DECLARE_SEVERITY_ACTION,
    DECLARE_SEVERITY_BLOCK,
    DECLARE_TITLE_ACTION,
    DECLARE_TITLE_BLOCK,
    DECLARE_TITLE_MAX,
    DECLARE_WORKFLOW_ACTION,
    DECLARE_WORKFLOW_BLOCK,
)
from bot.services.commands import CommandRunner

__all__ = ["form_channel", "handle_declare_submission"]

log = logging.getLogger(__name__)


def _state(view: dict[str, Any], block_id: str, action_id: str) -> dict[str, Any]:
    values = (view.get("state") or {}).get("values") or {}
    state = (values.get(block_id) or {}).get(action_id)
    return state if isinstance(state, dict) else {}


def _text(view: dict[str, Any], block_id: str, action_id: str) -> str:
    return str(_state(view, block_id, action_id).get("value") or "").strip()


def _selected(view: dict[str, Any], block_id: str, action_id: str) -> str | None:
    option = _state(view, block_id, action_id).get("selected_option")
    value = option.get("value") if isinstance(option, dict) else None
    return str(value) if value else None


def form_channel(view: dict[str, Any]) -> str | None:
    """Return the channel a form was opened from, as its private metadata names it."""
    raw = view.get("private_metadata") or ""
    try:
        data = json.loads(raw)
    except (TypeError, ValueError):
        return None
    channel = data.get("channel") if isinstance(data, dict) else None
    return channel if isinstance(channel, str) and channel else None


def handle_declare_submission(
    ack: Ack, body: dict[str, Any], view: dict[str, Any], client: WebClient, context: BoltContext
) -> None:
    """Check the form (errors go back into the modal), close it, then declare the incident."""
    title = _text(view, DECLARE_TITLE_BLOCK, DECLARE_TITLE_ACTION)
    if not title:
        ack(response_action="errors", errors={DECLARE_TITLE_BLOCK: "Give the incident a title."})
        return
    if len(title) > DECLARE_TITLE_MAX:
        ack(
            response_action="errors",
            errors={DECLARE_TITLE_BLOCK: f"Keep the title to {DECLARE_TITLE_MAX} characters."},
        )
        return
    ack()
    runner: CommandRunner = context["commands"]
    user = str((body.get("user") or {}).get("id", ""))
    chosen = _selected(view, DECLARE_SEVERITY_BLOCK, DECLARE_SEVERITY_ACTION)
    severity = Severity(chosen) if chosen in ("P1", "P2", "P3") else None
    # what goes wrong from here is answered by the app's error handler
    answer = runner.declare_from_modal(
        user=user,
        title=title,
        severity=severity,
        workflow=_selected(view, DECLARE_WORKFLOW_BLOCK, DECLARE_WORKFLOW_ACTION),
        reason=_text(view, DECLARE_REASON_BLOCK, DECLARE_REASON_ACTION) or None,
    )
    channel = form_channel(view)
    if channel is None or not user:
        return
    try:
        client.chat_postEphemeral(channel=channel, user=user, text=answer)
    except SlackApiError as exc:
        # e.g. the bot is not in that channel: the card in the workflow's channel still tells
        log.warning("could not confirm the declaration to %s: %s", user, exc.response.get("error"))
    except (SlackClientError, OSError) as exc:
        log.warning("could not confirm the declaration to %s: %s", user, exc)
