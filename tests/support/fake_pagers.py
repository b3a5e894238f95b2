"""In-memory fakes of what paging delivery talks to: a `Pager` per channel and the chat.

A `FakePager` records every call with the message it was given and can be told to fail; a
`FakeChat` records thread replies. Service-level tests assert on what was sent without HTTP;
the adapters' own wire formats are tested against the stand-ins (tests/standins/paging.py).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from bot.integrations.ports import PostedMessage
from bot.paging.channels import CHANNEL_LABELS
from bot.paging.providers.ports import PageMessage

__all__ = ["FakeChat", "FakePager", "Posted", "Sent", "fake_pagers"]


@dataclass(frozen=True)
class Sent:
    """One call a pager received."""

    action: str  # "page", "acknowledge" or "resolve"
    message: PageMessage
    key: str
    uncertain: bool = False


class FakePager:
    """A Pager that keeps what it is asked to send; `fail_next` makes calls raise."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.sent: list[Sent] = []
        self._failures: list[BaseException] = []

    def fail_next(self, error: BaseException, times: int = 1) -> None:
        """Raise `error` from the next `times` calls (each still recorded as attempted)."""
        self._failures.extend([error] * times)

    def _record(self, sent: Sent) -> dict[str, Any]:
        if self._failures:
            raise self._failures.pop(0)
        self.sent.append(sent)
        return {"sent": len(self.sent)}

    def page(self, message: PageMessage, *, key: str, uncertain: bool) -> dict[str, Any]:
        return self._record(Sent("page", message, key, uncertain))

    def acknowledge(self, message: PageMessage, *, key: str) -> dict[str, Any]:
        return self._record(Sent("acknowledge", message, key))

    def resolve(self, message: PageMessage, *, key: str) -> dict[str, Any]:
        return self._record(Sent("resolve", message, key))

    def pages(self, slack_id: str | None = None) -> list[PageMessage]:
        """Return the pages sent, to the person with `slack_id` if given."""
        return [
            s.message
            for s in self.sent
            if s.action == "page"
            and (slack_id is None or (s.message.person and s.message.person.slack_id == slack_id))
        ]

    def actions(self) -> list[str]:
        return [s.action for s in self.sent]


def fake_pagers(channels: Iterable[str] = CHANNEL_LABELS) -> dict[str, FakePager]:
    """Return a FakePager for each channel (every registered one by default), named by label."""
    return {c: FakePager(CHANNEL_LABELS.get(c, c)) for c in channels}


@dataclass(frozen=True)
class Posted:
    channel: str
    text: str
    key: str
    thread_ts: str | None


@dataclass
class FakeChat:
    """A ChatNotifier that keeps its posts; a post's ts is its number."""

    posts: list[Posted] = field(default_factory=list)

    def post(
        self,
        *,
        channel: str,
        text: str,
        blocks: list[dict[str, Any]] | None,
        key: str,
        thread_ts: str | None = None,
    ) -> PostedMessage:
        self.posts.append(Posted(channel, text, key, thread_ts))
        return PostedMessage(channel=channel, ts=f"{len(self.posts)}.000000")

    def update(
        self, *, channel: str, ts: str, text: str, blocks: list[dict[str, Any]] | None
    ) -> None:
        raise AssertionError("paging never updates a message")

    def find(self, *, channel: str, key: str, thread_ts: str | None = None) -> str | None:
        for i, p in enumerate(self.posts, start=1):
            if p.channel == channel and p.key == key and p.thread_ts == thread_ts:
                return f"{i}.000000"
        return None

    def upload(
        self,
        *,
        channel: str,
        filename: str,
        content: bytes,
        title: str,
        thread_ts: str | None = None,
    ) -> str:
        raise AssertionError("paging never uploads a file")

    def permalink(self, *, channel: str, ts: str) -> str | None:
        return None

    def thread_texts(self) -> list[str]:
        return [p.text for p in self.posts if p.thread_ts]
