"""Local mode: print review cards as readable text instead of posting them to Slack."""

from __future__ import annotations

import time
from typing import Any

from bot.integrations.console_chat import ConsoleChat
from bot.integrations.ports import PostedMessage

__all__ = ["ConsoleHandoffChat"]


class ConsoleHandoffChat(ConsoleChat):
    """A ConsoleChat whose top-level posts are handoff review cards."""

    def post(
        self,
        *,
        channel: str,
        text: str,
        blocks: list[dict[str, Any]] | None,
        key: str,
        thread_ts: str | None = None,
    ) -> PostedMessage:
        if thread_ts is not None:
            return super().post(
                channel=channel, text=text, blocks=blocks, key=key, thread_ts=thread_ts
            )
        ts = f"{time.time():.6f}"
        self._print(f"\n=== [slack {channel}] handoff for review ===\n{text}\n")
        self._texts[ts] = text
        return PostedMessage(channel=channel, ts=ts)

    def update(
        self, *, channel: str, ts: str, text: str, blocks: list[dict[str, Any]] | None
    ) -> None:
        if self._texts.get(ts) == text:
            return
        self._texts[ts] = text
        self._print(f"\n=== [slack {channel}] handoff card updated ===\n{text}\n")
