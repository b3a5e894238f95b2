"""What happened to a handoff, told to listeners inside the transaction that did it.

This is how tickets and paging hook into handoffs without the handoff service knowing them:
hand a listener to `HandoffService(listeners=[...])` (every event) or
`HandoffService(pagers=[...])` (only the page step of a missed SLA) in the composition root,
and record side effects (outbox rows on your own lane) in the session you are given. A
listener must not do I/O beyond that session; an exception rolls the whole change back.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from sqlmodel import Session

from bot.handoffs.domain import Decision, SlaAction, SlaClock
from storage.models import HandoffRow

__all__ = [
    "HandoffClaimed",
    "HandoffDecided",
    "HandoffEvent",
    "HandoffListener",
    "HandoffQueued",
    "HandoffReleased",
    "HandoffSlaMissed",
    "publish",
]


@dataclass(frozen=True)
class HandoffQueued:
    """A handoff of tier review or human entered the queue (a ticket is due)."""

    handoff: HandoffRow
    now: datetime


@dataclass(frozen=True)
class HandoffClaimed:
    """A reviewer took the lease (`renewed`: the holder extended it)."""

    handoff: HandoffRow
    actor: str
    now: datetime
    renewed: bool


@dataclass(frozen=True)
class HandoffReleased:
    """The handoff went back to the queue: released by `actor`, or its lease expired."""

    handoff: HandoffRow
    actor: str | None
    now: datetime
    expired: bool


@dataclass(frozen=True)
class HandoffDecided:
    """A reviewer decided; `handoff` carries the edited output or the reject reason."""

    handoff: HandoffRow
    actor: str
    decision: Decision
    now: datetime


@dataclass(frozen=True)
class HandoffSlaMissed:
    """An SLA clock reached a step: remind, mention on-call, or page (`action`).

    `oncall` are the Slack user ids the step addressed.
    """

    handoff: HandoffRow
    clock: SlaClock
    action: SlaAction
    oncall: tuple[str, ...]
    now: datetime


HandoffEvent = HandoffQueued | HandoffClaimed | HandoffReleased | HandoffDecided | HandoffSlaMissed


class HandoffListener(Protocol):
    def __call__(self, session: Session, event: HandoffEvent) -> None: ...


def publish(session: Session, listeners: Sequence[HandoffListener], event: HandoffEvent) -> None:
    """Tell every listener, in order."""
    for listener in listeners:
        listener(session, event)
