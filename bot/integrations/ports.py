"""Ports the services and the delivery worker talk to; adapters live beside this file.

Errors an adapter raises (the delivery worker acts on them):
    RetryLater(reason, retry_after=None)  -- transient; retried after backoff or Retry-After
    GiveUp(reason)                        -- permanent; the row is marked failed and logged
    NotYet(reason, at)                    -- the receiver is not due yet (a channel's pace): the
                                             row waits until `at`; no attempt is counted
Anything else is treated as transient.

`post_once` is how every chat post is made: an uncertain attempt looks for an earlier post
carrying its key before it posts again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

__all__ = [
    "ChatNotifier",
    "GiveUp",
    "NotYet",
    "PostedMessage",
    "RetryLater",
    "TicketDraft",
    "TicketRef",
    "TicketTracker",
    "TicketUser",
    "post_once",
]


class RetryLater(Exception):
    """A transient failure; `retry_after` (seconds) comes from the receiver when it says."""

    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.retry_after = retry_after


class GiveUp(Exception):
    """A failure retrying cannot help."""


class NotYet(Exception):
    """Nothing was sent: the receiver takes the next message at `at` (on the injected clock).

    Not a failure: the row is deferred to `at` without counting an attempt, so a paced post
    neither uses up retries nor makes the next attempt look for a post that was never made.
    """

    def __init__(self, reason: str, at: datetime) -> None:
        super().__init__(reason)
        self.at = at


@dataclass(frozen=True)
class PostedMessage:
    channel: str
    ts: str


class ChatNotifier(Protocol):
    """Posts and updates chat messages; raises RetryLater / GiveUp."""

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

    def permalink(self, *, channel: str, ts: str) -> str | None:
        """Return a link to a posted message, or None where there is none (local mode)."""
        ...


@dataclass(frozen=True)
class TicketDraft:
    """A ticket to file; `description` is already in the tracker's markup, redacted and escaped."""

    project: str
    summary: str
    description: str
    issue_type: str
    priority: str | None
    labels: tuple[str, ...]
    # the label only this incident's ticket carries: how a retry finds a ticket it already made
    dedup_label: str


@dataclass(frozen=True)
class TicketRef:
    key: str
    url: str | None


@dataclass(frozen=True)
class TicketUser:
    """Whom to assign: a tracker account (Cloud accountId, Data Center user name) or an email."""

    account: str | None = None
    email: str | None = None


class TicketTracker(Protocol):
    """Files and updates tickets; raises RetryLater / GiveUp."""

    def create(self, draft: TicketDraft) -> TicketRef: ...

    def find(self, *, project: str, label: str) -> TicketRef | None:
        """Return the ticket carrying `label`, so a retry after a lost answer never files twice."""
        ...

    def comment(self, *, key: str, body: str) -> None: ...

    def has_comment(self, *, key: str, marker: str) -> bool:
        """Return True if a recent comment of the ticket contains `marker`."""
        ...

    def resolve(self, *, key: str, preferred: Sequence[str]) -> str | None:
        """Move the ticket to a done status; return its name, or None if it was done already."""
        ...

    def reopen(self, *, key: str) -> str | None:
        """Move a done ticket back to an open status; return its name, or None if it was open."""
        ...

    def account_for(self, user: TicketUser) -> str:
        """Return the tracker account of a person (looked up by email when not given)."""
        ...

    def assign(self, *, key: str, account: str) -> None: ...

    def set_priority(self, *, key: str, priority: str) -> None: ...


def post_once(
    chat: ChatNotifier,
    *,
    channel: str,
    text: str,
    key: str,
    uncertain: bool,
    blocks: list[dict[str, Any]] | None = None,
    thread_ts: str | None = None,
    sent: list[PostedMessage] | None = None,
) -> PostedMessage:
    """Post a message carrying `key` once; an uncertain attempt first looks for an earlier post.

    `uncertain` says an earlier attempt may have posted before its answer was lost (a crash, a
    timeout, a 5xx). What this call posted is appended to `sent`: an attempt deferred after part
    of it went out must look before it posts again.
    """
    if uncertain:
        ts = chat.find(channel=channel, key=key, thread_ts=thread_ts)
        if ts is not None:
            return PostedMessage(channel=channel, ts=ts)
    posted = chat.post(channel=channel, text=text, blocks=blocks, key=key, thread_ts=thread_ts)
    if sent is not None:
        sent.append(posted)
    return posted
