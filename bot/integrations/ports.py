"""Ports the services and the delivery worker talk to; adapters live beside this file."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

__all__ = ["ChatNotifier", "PostedMessage"]


@dataclass(frozen=True)
class PostedMessage:
    channel: str
    ts: str


class ChatNotifier(Protocol):
    """Posts and updates chat messages; raises RetryLater / GiveUp from bot.delivery.worker."""

    def post(
        self,
        *,
        channel: str,
        text: str,
        blocks: list[dict[str, Any]] | None,
        key: str,
        thread_ts: str | None = None,
    ) -> PostedMessage: ...

    def update(
        self, *, channel: str, ts: str, text: str, blocks: list[dict[str, Any]] | None
    ) -> None: ...

    def find(self, *, channel: str, key: str, thread_ts: str | None = None) -> str | None:
        """Return the ts of an earlier post carrying `key`, so a retry never posts twice."""
        ...

    def upload(
        self,
        *,
        channel: str,
        filename: str,
        content: bytes,
        title: str,
        thread_ts: str | None = None,
    ) -> str:
        """Upload a file (a chart) to the channel, in a thread if given; return its file id."""
        ...
