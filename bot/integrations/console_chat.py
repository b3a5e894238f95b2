"""Local mode: print what would be posted to Slack as readable text."""

from __future__ import annotations

import sys
import threading
import time
from typing import Any, TextIO

from bot.integrations.ports import PostedMessage

__all__ = ["ConsoleChat"]


class ConsoleChat:
    """A ChatNotifier that writes to a stream instead of calling Slack."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream or sys.stdout
        self._lock = threading.Lock()
        self._texts: dict[str, str] = {}

    def _print(self, text: str) -> None:
        with self._lock:
            self._stream.write(text + "\n")
            self._stream.flush()

    def post(
        self,
        *,
        channel: str,
        text: str,
        blocks: list[dict[str, Any]] | None,
        key: str,
        thread_ts: str | None = None,
    ) -> PostedMessage:
        ts = f"{time.time():.6f}"
        if thread_ts is None:
            what = "new incident card" if key.startswith("card:") else "new message"
            self._print(f"\n=== [slack {channel}] {what} ===\n{text}\n")
            self._texts[ts] = text
        else:
            for line in text.splitlines():
                self._print(f"[slack {channel} thread {thread_ts}] {line}")
        return PostedMessage(channel=channel, ts=ts)

    def update(
        self, *, channel: str, ts: str, text: str, blocks: list[dict[str, Any]] | None
    ) -> None:
        if self._texts.get(ts) == text:
            return
        self._texts[ts] = text
        self._print(f"\n=== [slack {channel}] card updated ===\n{text}\n")

    def upload(
        self,
        *,
        channel: str,
        filename: str,
        content: bytes,
        title: str,
        thread_ts: str | None = None,
    ) -> str:
        self._print(f"[slack {channel}] would upload {filename} ({len(content)} bytes): {title}")
        return "F-console"

    def permalink(self, *, channel: str, ts: str) -> str | None:
        # printed messages have no address
        return None

    def find(self, *, channel: str, key: str, thread_ts: str | None = None) -> str | None:
        # a console cannot be searched; a crash mid-print may print a line twice
        return None
