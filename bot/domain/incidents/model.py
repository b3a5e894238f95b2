"""An incident as a value, what a decision on it causes, and the errors that refuse one.

Every lifecycle function takes an `Incident` snapshot, a command and `now`, and returns an
`Outcome`: the new snapshot and the effects that follow, in the order they happen. The service
writes the snapshot back and carries the effects out (journal entries, card posts, events).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from bot.domain.incidents.vocabulary import IncidentState, JournalKind
from bot.domain.severity import Reason, Severity

__all__ = [
    "SYSTEM",
    "CardChanged",
    "CardPosted",
    "Effect",
    "Entry",
    "Event",
    "GroupClosed",
    "IllegalTransition",
    "Incident",
    "IncidentOpened",
    "LifecycleError",
    "MissingReason",
    "Outcome",
    "PostmortemRequested",
    "ReportRequested",
    "RootCauseSet",
    "SeverityMoved",
    "StateMoved",
]

# the author of everything the bot decides by itself
SYSTEM = "ai-incident"


@dataclass(frozen=True)
class Incident:
    """What the lifecycle knows of an incident; `id` is None until it is stored."""

    id: int | None
    title: str
    workflow: str
    category: str
    severity: Severity
    severity_reasons: tuple[Reason, ...]
    state: IncidentState
    source: str
    detected_at: datetime
    triggered_at: datetime
    severity_changed_at: datetime
    created_at: datetime
    updated_at: datetime
    group_key: str | None = None
    commander: str | None = None
    ai_context: Mapping[str, Any] = field(default_factory=dict)
    impact_external: bool = False
    slack_channel: str | None = None
    root_cause: str | None = None
    resolved_by: str | None = None
    resolution_summary: str | None = None
    acknowledged_at: datetime | None = None
    mitigated_at: datetime | None = None
    resolved_at: datetime | None = None
    root_cause_at: datetime | None = None
    severity_review_at: datetime | None = None
    root_cause_deadline_at: datetime | None = None

    def but(self, **changes: Any) -> Incident:
        """Return a copy with `changes` applied."""
        return replace(self, **changes)


# -- effects: what follows a decision, in order -----------------------------------------------


@dataclass(frozen=True)
class Entry:
    """A journal entry the decision writes; `batch` entries share one debounced thread post."""

    kind: JournalKind
    text: str
    author: str
    batch: bool = False


@dataclass(frozen=True)
class CardPosted:
    """The incident's card is posted for the first time."""


@dataclass(frozen=True)
class CardChanged:
    """The incident's card shows something new."""


@dataclass(frozen=True)
class GroupClosed:
    """The incident's alert group closes, so a new firing opens a new incident."""


@dataclass(frozen=True)
class ReportRequested:
    """A report (`timeline` or `postmortem`) is posted in the incident's thread."""

    name: str


@dataclass(frozen=True)
class IncidentOpened:
    """An incident was opened from alerts or declared (`actor` is the source or the person)."""

    incident: Incident
    actor: str
    declared: bool


@dataclass(frozen=True)
class StateMoved:
    """The incident moved from one state to another; `incident` is as it was then."""

    incident: Incident
    previous: IncidentState
    current: IncidentState
    actor: str
    why: str = ""


@dataclass(frozen=True)
class SeverityMoved:
    """Severity changed, raised by the rules or set by a person (`by_human`)."""

    incident: Incident
    previous: Severity
    current: Severity
    actor: str
    reason: str
    by_human: bool


@dataclass(frozen=True)
class RootCauseSet:
    incident: Incident
    text: str
    actor: str


@dataclass(frozen=True)
class PostmortemRequested:
    incident: Incident
    actor: str


# what listeners are told, each with the incident as it was when it happened
Event = IncidentOpened | StateMoved | SeverityMoved | RootCauseSet | PostmortemRequested

Effect = Entry | CardPosted | CardChanged | GroupClosed | ReportRequested | Event


@dataclass(frozen=True)
class Outcome:
    """The incident after a decision and the effects that follow, in order."""

    incident: Incident
    effects: tuple[Effect, ...] = ()

    @property
    def changed(self) -> bool:
        """Return True if the decision did anything."""
        return bool(self.effects)

    def then(self, other: Outcome) -> Outcome:
        """Return this outcome followed by `other` (decided on this one's incident)."""
        return Outcome(other.incident, self.effects + other.effects)


# -- errors -----------------------------------------------------------------------------------


class LifecycleError(Exception):
    """The lifecycle refused a command."""


class IllegalTransition(LifecycleError):
    """The incident's state does not allow the action."""

    def __init__(self, state: IncidentState, action: str) -> None:
        super().__init__(f"an incident that is {state.value} cannot be {action}")
        self.state = state
        self.action = action


class MissingReason(LifecycleError):
    """The command needs a reason (or a text) and got only blanks."""

    def __init__(self, action: str) -> None:
        super().__init__(f"give a reason to {action}")
        self.action = action
