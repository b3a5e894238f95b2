"""Slack direct messages for pages: `conversations.open`, then `chat.postMessage`."""

from __future__ import annotations

from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError

from bot.domain.redaction import SafeText
from bot.integrations.ports import GiveUp, post_once
from bot.integrations.slack_chat import SlackChat, _translate
from bot.paging.providers.ports import PageMessage
from bot.rendering.pages import dm_blocks, dm_text

__all__ = ["SlackDirect"]


class SlackDirect:
    """A Pager that DMs the person; a retry after an uncertain attempt looks for its post first."""

    name = "Slack DM"

    def __init__(self, client: WebClient, safe: SafeText, chat: SlackChat | None = None) -> None:
        self._client = client
        self._safe = safe
        self._chat = chat or SlackChat(client)

    def _open(self, user: str) -> str:
        try:
            resp = self._client.conversations_open(users=user)
        except (SlackApiError, SlackClientError, OSError) as exc:
            raise _translate(exc, "conversations.open") from exc
        channel: dict[str, Any] = resp.get("channel") or {}
        if not channel.get("id"):
            raise GiveUp("conversations.open: no channel in the answer")
        return str(channel["id"])

    def page(self, message: PageMessage, *, key: str, uncertain: bool) -> dict[str, Any]:
        person = message.person
        if person is None or not person.slack_id:
            raise GiveUp("no Slack id to send a direct message to")
        channel = self._open(person.slack_id)
        posted = post_once(
            self._chat,
            channel=channel,
            text=dm_text(message, self._safe),
            blocks=dm_blocks(message, self._safe),
            key=key,
            uncertain=uncertain,
        )
        return {"channel": channel, "ts": posted.ts}

    def acknowledge(self, message: PageMessage, *, key: str) -> dict[str, Any]:
        return {"skipped": "Slack DMs are not mirrored"}

    def resolve(self, message: PageMessage, *, key: str) -> dict[str, Any]:
        return {"skipped": "Slack DMs are not mirrored"}
