"""What happened to an incident, told to listeners inside the transaction that did it.

Listeners (tickets, paging, the kill switch) record their own side effects, usually outbox rows,
in the same transaction, so a state change and everything it causes commit or roll back together.
A listener must not do I/O beyond the session it is given.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from sqlmodel import Session

from bot.domain.incidents import IncidentState
from bot.domain.severity import Severity
from storage.models import IncidentRow

__all__ = [
    "IncidentEvent",
    "IncidentOpened",
    "Listener",
    "PostmortemDrafted",
    "RootCauseRecorded",
    "SeverityChanged",
    "StateChanged",
    "publish",
]


@dataclass(frozen=True)
class IncidentOpened:
    """An incident was opened from alerts or declared by hand (`actor` is the source or person)."""

    incident: IncidentRow
    actor: str
    now: datetime
    declared: bool


@dataclass(frozen=True)
class StateChanged:
    """The incident moved from one state to another."""

    incident: IncidentRow
    previous: IncidentState
    current: IncidentState
    actor: str
    now: datetime
    why: str = ""


@dataclass(frozen=True)
class SeverityChanged:
    """Severity changed, raised by the rules or set by a person (`by_human`)."""

    incident: IncidentRow
    previous: Severity
    current: Severity
    actor: str
    now: datetime
    reason: str
    by_human: bool


@dataclass(frozen=True)
class RootCauseRecorded:
    incident: IncidentRow
    text: str
    actor: str
    now: datetime


@dataclass(frozen=True)
class PostmortemDrafted:
    """Someone asked for the postmortem draft; it is posted in the thread (tickets attach it)."""

    incident: IncidentRow
    actor: str
    now: datetime


IncidentEvent = (
    IncidentOpened | StateChanged | SeverityChanged | RootCauseRecorded | PostmortemDrafted
)


class Listener(Protocol):
    def __call__(self, session: Session, event: IncidentEvent) -> None: ...


def publish(session: Session, listeners: Sequence[Listener], event: IncidentEvent) -> None:
    """Tell every listener, in order; an exception rolls the whole change back."""
    for listener in listeners:
        listener(session, event)
