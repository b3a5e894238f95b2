"""Message events: replies in incident threads become journal entries."""

from __future__ import annotations

from typing import Any

from slack_bolt import BoltContext

from bot.services.commands import CommandRunner

__all__ = ["handle_message_event"]


def handle_message_event(event: dict[str, Any], body: dict[str, Any], context: BoltContext) -> None:
    """Capture a reply, an edit or a deletion (Bolt acknowledges events itself)."""
    runner: CommandRunner = context["commands"]
    runner.thread_message(event)
