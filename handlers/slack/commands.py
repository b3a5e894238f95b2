"""The `/ai-incident` slash command listener."""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt import Ack, BoltContext, Respond
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError

from bot.domain import commands as cmd
from bot.rendering.cards import declare_modal
from bot.services.commands import CommandRunner, Invocation

__all__ = ["COMMAND", "handle_slash_command"]

log = logging.getLogger(__name__)

COMMAND = "/ai-incident"


def _wants_form(runner: CommandRunner, text: str) -> bool:
    try:
        parsed = cmd.parse_command(text, known_workflows=runner.workflows)
    except cmd.CommandError:
        return False
    return isinstance(parsed, cmd.DeclareModal)


def _open_declare_form(
    client: WebClient, runner: CommandRunner, trigger_id: str, channel: str
) -> bool:
    """Open the declare modal; return False when Slack would not (the trigger lives 3 s)."""
    if not trigger_id:
        return False
    try:
        client.views_open(trigger_id=trigger_id, view=declare_modal(runner.workflows, channel))
    except SlackApiError as exc:
        log.warning("views.open for the declare form failed: %s", exc.response.get("error"))
        return False
    except (SlackClientError, OSError) as exc:
        log.warning("views.open for the declare form failed: %s", exc)
        return False
    return True


def handle_slash_command(
    ack: Ack,
    command: dict[str, Any],
    body: dict[str, Any],
    respond: Respond,
    context: BoltContext,
    client: WebClient,
) -> None:
    """Acknowledge at once, then answer the user ephemerally through the response URL.

    `declare` without arguments opens the declare form instead; only when Slack refuses it does
    the user get an answer (how to declare by typing).
    """
    ack()
    runner: CommandRunner = context["commands"]
    invocation = Invocation(
        text=str(command.get("text", "")),
        user=str(command.get("user_id", "")),
        channel=str(command.get("channel_id", "")),
    )
    if _wants_form(runner, invocation.text) and _open_declare_form(
        client, runner, str(command.get("trigger_id", "")), invocation.channel
    ):
        return
    # what goes wrong from here is answered by the app's error handler
    answer = runner.answer(invocation)
    respond(text=answer.text, blocks=answer.blocks, response_type="ephemeral")
