"""The `/ai-incident` slash command listener."""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt import Ack, BoltContext, Respond

from bot.services.commands import CommandRunner, Invocation

__all__ = ["COMMAND", "handle_slash_command"]

log = logging.getLogger(__name__)

COMMAND = "/ai-incident"
FAILED = "Something went wrong on our side while running that command; it has been logged."


def handle_slash_command(
    ack: Ack, command: dict[str, Any], respond: Respond, context: BoltContext
) -> None:
    """Acknowledge at once, then answer the user ephemerally through the response URL."""
    ack()
    runner: CommandRunner = context["commands"]
    invocation = Invocation(
        text=str(command.get("text", "")),
        user=str(command.get("user_id", "")),
        channel=str(command.get("channel_id", "")),
    )
    try:
        answer = runner.run(invocation)
    except Exception:
        # the runner turns every expected failure into a sentence; this is a bug, not a refusal
        log.exception("/ai-incident %r failed", invocation.text)
        answer = FAILED
    respond(text=answer, response_type="ephemeral")
